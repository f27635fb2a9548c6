import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.names import dotted
from rnnlint.flow import library
from rnnlint.flow.keras import Apply, clips, compile_optimizer, keras_training
from rnnlint.rule import Invalid, Option, Rule, Valid, insert_before, replace


class KerasMissingClip(Rule):
    """Keras / TensorFlow recurrent training without gradient clipping.

    **What it catches.** A file that trains a Keras model with an ``LSTM``,
    ``GRU`` or ``SimpleRNN`` layer (from ``keras.layers``,
    ``tensorflow.keras.layers`` or ``tf.keras.layers``, under any alias, or a
    model built in another file of the project) where nothing clips the
    gradients:

    * a Keras optimizer (``tf.keras.optimizers.Adam(...)``,
      ``keras.optimizers.RMSprop(...)``, ...) built without ``clipnorm``,
      ``global_clipnorm`` or ``clipvalue``, unless every ``apply_gradients``
      that uses it is preceded by ``tf.clip_by_global_norm`` /
      ``tf.clip_by_norm`` / ``tf.clip_by_value`` in the same function;
    * ``model.compile(optimizer="adam")`` (or no optimizer: Keras then uses
      ``"rmsprop"``), which builds an optimizer that never clips;
    * a ``GradientTape`` loop whose ``optimizer.apply_gradients(zip(grads,
      variables))`` is not preceded by a clip, when the optimizer is not
      built in the file.

    Keras CNNs and Dense-only models are left alone. TensorFlow is never
    imported: this is read from the code.

    **Why it matters.** Back-propagation through time multiplies the
    gradient by the recurrent weights at every step; on long sequences one
    batch can produce a gradient thousands of times larger than usual, and a
    single update then turns the loss into NaN. Clipping the global norm is
    the standard remedy for recurrent networks and costs nothing when the
    gradients are normal.

    **Example.**

        model = tf.keras.Sequential([tf.keras.layers.LSTM(64), tf.keras.layers.Dense(1)])
        optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)   # RNN060

    **Fix safety.** Safe: the fix adds ``global_clipnorm=1.0`` to the
    optimizer's constructor, or inserts ``grads, _ =
    tf.clip_by_global_norm(grads, 1.0)`` before ``apply_gradients`` (using the
    file's gradients variable and TensorFlow alias). Both leave normal
    updates untouched and only cap the rare exploding ones. The inserted clip
    is unsafe when the file uses loss scaling (mixed precision): the
    gradients may still be scaled at that point. A string optimizer in
    ``compile()`` gets a display-only suggestion (replace it with
    ``tf.keras.optimizers.Adam(global_clipnorm=1.0)``): which class a string
    resolves to depends on the Keras version and platform, so the
    replacement is for the author to confirm.

    **Options.** ``clip-norm``: the norm the fixes write (default 1.0).
    """

    code = "RNN060"
    name = "keras-missing-clip"
    fix_applicability = Applicability.SAFE
    # ``model.compile(...)`` of a model built in another file: with what a Keras compile passes, or the fit
    # it is for (a bare ``.compile(`` would pass every helper that calls ``re.compile(``)
    triggers = ("keras", "tensorflow", (".compile(", "loss"), (".compile(", "optimizer"), (".compile(", ".fit("))
    options = {"clip-norm": Option(1.0, "global norm written by the fixes", minimum=0, exclusive_minimum=True, maximum=1e6)}

    def finish(self) -> None:
        keras = keras_training(self.ctx)
        if not (keras.optimizers or keras.applies or keras.compiles) or not keras.recurrent:
            return
        # a custom train_step clips by hand: self.optimizer / model.optimizer come from compile()
        via_model = [a for a in keras.applies if a.via_model]
        model_loop_clips = bool(via_model) and all(a.clipped for a in via_model)

        for call in keras.optimizers:
            if clips(call):
                continue
            applies = [a for a in keras.applies if any(o is call for o in a.optimizers)]
            if applies:
                if all(a.clipped for a in applies):
                    continue
            elif model_loop_clips:
                continue
            self._report_optimizer(call)

        for call in keras.compiles:
            if not model_loop_clips:
                self._report_compile(call)

        for apply in keras.applies:
            if apply.clipped or apply.built or keras.optimizers or keras.compiles:
                continue  # clipped, or judged where its optimizer is built
            self._report_apply(apply, keras.loss_scaling)

    # -- reports -----------------------------------------------------------

    def _report_optimizer(self, call: cst.Call) -> None:
        short = (dotted(call.func) or "optimizer").rsplit(".", 1)[-1]
        norm = self.settings["clip-norm"]
        self.report(
            call,
            f"{short} optimizer for a recurrent Keras model has no clipnorm / global_clipnorm / clipvalue, and no "
            f"training step clips the gradients: one exploding gradient through the LSTM/GRU time steps turns the "
            f"loss into NaN. Add global_clipnorm={norm!r}",
            fix=f"Add global_clipnorm={norm!r}",
            edits=[replace(call, _with_keyword(call, "global_clipnorm", repr(norm)))],
        )

    def _report_compile(self, call: cst.Call) -> None:
        arg = compile_optimizer(call)
        norm = self.settings["clip-norm"]
        if arg is not None and not isinstance(arg.value, cst.SimpleString):
            return  # an optimizer object: judged where it is built
        written = str(arg.value.evaluated_value) if arg is not None else library.KERAS_DEFAULT_OPTIMIZER
        cls = library.KERAS_OPTIMIZER_CLASSES.get(written.lower())
        prefix, imports = self._optimizers_prefix()
        suggestion = (f"{prefix}.{cls}(global_clipnorm={norm!r})" if cls
                      else f"an optimizer with global_clipnorm={norm!r}")
        what = f'optimizer="{written}"' if arg is not None else 'compile() without an optimizer (Keras uses "rmsprop")'
        message = (
            f"{what} builds an optimizer that never clips gradients, for a recurrent Keras model: one exploding "
            f"gradient through the time steps turns the loss into NaN. Pass {suggestion} instead"
        )
        if arg is None or cls is None:
            self.report(arg.value if arg is not None else call, message)
            return
        self.report(
            arg.value,
            message,
            fix=f"Use {suggestion}",
            edits=[replace(arg.value, suggestion)],
            applicability=Applicability.DISPLAY_ONLY,
            imports=imports,
        )

    def _report_apply(self, apply: Apply, scaled: bool) -> None:
        receiver = apply.receiver or "optimizer"
        norm = self.settings["clip-norm"]
        grads = _gradients_name(apply.call)
        tf, imports = self._tensorflow_alias()
        clip = f"{grads or 'grads'}, _ = {tf or 'tf'}.clip_by_global_norm({grads or 'grads'}, {norm!r})"
        message = (
            f"{receiver}.apply_gradients() updates a recurrent Keras model with unclipped gradients: one exploding "
            f"gradient through the time steps turns the loss into NaN. Clip them first (`{clip}`), or build the "
            f"optimizer with global_clipnorm={norm!r}"
        )
        if grads is None or tf is None or apply.statement is None:
            self.report(apply.call, message)
            return
        self.report(
            apply.call,
            message,
            fix=f"Insert `{clip}` before apply_gradients",
            edits=[insert_before(apply.statement, clip)],
            applicability=Applicability.UNSAFE if scaled else Applicability.SAFE,
            imports=imports,
        )

    def _tensorflow_alias(self) -> tuple[str | None, tuple[str, ...]]:
        for local, target in self.ctx.imports.names.items():
            if target == "tensorflow":
                return local, ()
        if "tf" in self.ctx.imports.names:
            return None, ()  # ``tf`` means something else here
        return "tf", ("import tensorflow as tf",)

    def _optimizers_prefix(self) -> tuple[str, tuple[str, ...]]:
        """How this file spells the Keras optimizers module: the Keras it already imports."""
        names = self.ctx.imports.names
        for wanted in ("keras", "tensorflow.keras"):
            for local, target in names.items():
                if target == wanted:
                    return f"{local}.optimizers", ()
                if target == f"{wanted}.optimizers":
                    return local, ()
        tf, imports = self._tensorflow_alias()
        return f"{tf or 'tf'}.keras.optimizers", imports


def _gradients_name(call: cst.Call) -> str | None:
    """``grads`` in ``apply_gradients(zip(grads, variables))``."""
    if not call.args:
        return None
    value = call.args[0].value
    if isinstance(value, cst.Call) and dotted(value.func) == "zip" and len(value.args) == 2:
        first = value.args[0].value
        if isinstance(first, cst.Name):
            return first.value
    return None


def _with_keyword(call: cst.Call, keyword: str, value: str) -> cst.Call:
    """``call`` with ``keyword=value`` appended, in the call's own layout."""
    new = cst.Arg(keyword=cst.Name(keyword), value=cst.parse_expression(value),
                  equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    if isinstance(last.comma, cst.Comma):  # trailing comma: the new argument goes on its own line too
        separator = call.whitespace_before_args if isinstance(
            last.comma.whitespace_after, cst.ParenthesizedWhitespace) else cst.SimpleWhitespace(" ")
        args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=separator))
        new = new.with_changes(comma=last.comma)
    else:
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[*args, new])


_SEQUENTIAL = """
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.layers.Embedding(1000, 64),
        tf.keras.layers.LSTM(128),
        tf.keras.layers.Dense(1),
    ])
    """

_TAPE = """
    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    """

# a tape loop in train.py whose model is built in another file and whose optimizer is handed in
_HANDED_IN = """
    import tensorflow as tf2
    from models.seq import build_model

    def train(dataset, optimizer, epochs=10):
        model = build_model()
        for _ in range(epochs):
            for x, y in dataset:
                with tf2.GradientTape() as tape:
                    loss = tf2.reduce_mean(tf2.square(model(x) - y))
                gradients = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    """

_MODEL_FILES = {
        "models/__init__.py": "",
        "models/seq.py": """
            from tensorflow import keras
            def build_model():
                return keras.Sequential([keras.layers.LSTM(32), keras.layers.Dense(1)])
            """,
}

KerasMissingClip.VALID = [
    Valid(_SEQUENTIAL + """
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3, global_clipnorm=1.0)
    model.compile(optimizer=optimizer, loss="mse")
    """),
    # the tape loop clips by hand (list comprehension of clip_by_norm)
    Valid(_SEQUENTIAL + """
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
    loss_fn = tf.keras.losses.MeanSquaredError()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        grads = [tf.clip_by_norm(g, 1.0) for g in grads]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    """),
    # mixed precision: the wrapped optimizer is the one used, and the loop clips unscaled gradients
    Valid("""
    import tensorflow as tf
    from tensorflow.keras import mixed_precision
    model = tf.keras.Sequential([tf.keras.layers.GRU(64), tf.keras.layers.Dense(8)])
    opt = mixed_precision.LossScaleOptimizer(tf.optimizers.Adam(3e-4))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            scaled = opt.get_scaled_loss(tf.reduce_mean(tf.keras.losses.mse(y, model(x))))
        grads = opt.get_unscaled_gradients(tape.gradient(scaled, model.trainable_variables))
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        opt.apply_gradients(zip(grads, model.trainable_variables))
    """),
    # a CNN and a Dense-only model: not recurrent
    Valid("""
    from tensorflow import keras
    from tensorflow.keras import layers
    cnn = keras.Sequential([layers.Conv2D(32, 3), layers.Flatten(), layers.Dense(10)])
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    mlp = keras.Sequential([layers.Dense(64), layers.Dense(1)])
    opt = keras.optimizers.SGD(0.1)
    mlp.compile(optimizer=opt, loss="mse")
    """),
    # a custom train_step clips through a helper; compile's string optimizer is then fine
    Valid("""
    import keras
    import tensorflow as tf
    from keras import layers

    def clip(grads):
        return tf.clip_by_global_norm(grads, 5.0)[0]

    class Forecaster(keras.Model):
        def __init__(self):
            super().__init__()
            self.gru = layers.GRU(32)
            self.head = layers.Dense(1)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = self.compute_loss(y=y, y_pred=self.head(self.gru(x)))
            grads = clip(tape.gradient(loss, self.trainable_variables))
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return {"loss": loss}

    model = Forecaster()
    model.compile(optimizer="adam", loss="mse")
    """),
    # the optimizer reaches the clipping step through a constructor argument and self
    Valid("""
    import tensorflow as tf

    class Trainer:
        def __init__(self, model, optimizer):
            self.model = model
            self.opt = optimizer

        def step(self, x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self.model(x) - y))
            grads = tape.gradient(loss, self.model.trainable_variables)
            grads, _ = tf.clip_by_global_norm(grads, 1.0)
            self.opt.apply_gradients(zip(grads, self.model.trainable_variables))

    model = tf.keras.Sequential([tf.keras.layers.LSTM(32), tf.keras.layers.Dense(1)])
    trainer = Trainer(model, tf.keras.optimizers.Adam(1e-3))
    """),
    # the tape loop's optimizer is built, clipping, by its caller in another file
    Valid(_HANDED_IN, files={
        **_MODEL_FILES,
        "run.py": """
            import tensorflow as tf
            from train import train
            train([], tf.keras.optimizers.Adam(1e-3, global_clipnorm=1.0))
            """,
    }),
    # PyTorch code with torch.compile is not Keras
    Valid("""
    import torch
    model = torch.nn.LSTM(8, 16)
    model = torch.compile(model)
    """),
]

KerasMissingClip.INVALID = [
    Invalid(_SEQUENTIAL + """
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3)
    loss_fn = tf.keras.losses.MeanSquaredError()
    """ + _TAPE, lines=[9], fixed=_SEQUENTIAL + """
    optimizer = tf.keras.optimizers.Adam(learning_rate=1e-3, global_clipnorm=1.0)
    loss_fn = tf.keras.losses.MeanSquaredError()
    """ + _TAPE),
    # aliases: from tensorflow.keras import layers, optimizers as opts; multi-line call with trailing comma
    Invalid("""
    from tensorflow.keras import layers, models
    from tensorflow.keras import optimizers as opts

    model = models.Sequential([layers.Bidirectional(layers.GRU(64)), layers.Dense(5)])
    model.compile(
        optimizer=opts.RMSprop(
            learning_rate=1e-3,
        ),
        loss="categorical_crossentropy",
    )
    """, lines=[6], fixed="""
    from tensorflow.keras import layers, models
    from tensorflow.keras import optimizers as opts

    model = models.Sequential([layers.Bidirectional(layers.GRU(64)), layers.Dense(5)])
    model.compile(
        optimizer=opts.RMSprop(
            learning_rate=1e-3,
            global_clipnorm=1.0,
        ),
        loss="categorical_crossentropy",
    )
    """),
    # string optimizer in compile: display-only suggestion (the text stays as it is)
    Invalid("""
    import keras
    from keras.layers import SimpleRNN, Dense
    model = keras.Sequential([SimpleRNN(32), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    """, lines=[4]),
    # model built in another file; optimizer handed in: the tape loop gets the clip line
    Invalid(_HANDED_IN, lines=[11], files=_MODEL_FILES, fixed=_HANDED_IN.replace(
        "                optimizer.apply_gradients",
        "                gradients, _ = tf2.clip_by_global_norm(gradients, 1.0)\n                optimizer.apply_gradients")),
    # the configured norm is the one written
    Invalid("""
    from keras.layers import GRU
    from keras.optimizers import SGD
    from keras import Sequential
    model = Sequential([GRU(16)])
    model.compile(optimizer=SGD(0.01), loss="mse")
    """, lines=[5], options={"clip-norm": 5.0}, fixed="""
    from keras.layers import GRU
    from keras.optimizers import SGD
    from keras import Sequential
    model = Sequential([GRU(16)])
    model.compile(optimizer=SGD(0.01, global_clipnorm=5.0), loss="mse")
    """),
    # compile without an optimizer: Keras's default RMSprop never clips
    Invalid("""
    from tensorflow.keras.layers import LSTM as Recurrent, Dense
    from tensorflow.keras import Sequential
    model = Sequential([Recurrent(16), Dense(1)])
    model.compile(loss="mse")
    """, lines=[4]),
]
