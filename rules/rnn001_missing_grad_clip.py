from __future__ import annotations

import re

import libcst as cst

from rnnlint.flow import library
from rnnlint.flow.lightning import fitted_model, is_trainer_call, trainer_clips, trainers_fitting
from rnnlint.flow.resolve import flow_of, number, related, site_of, values
from rnnlint.flow.values import INSTANCE, LIBRARY, Value
from rnnlint.flow.models import is_recurrent, recurrent
from rnnlint.diagnostics import Applicability
from rnnlint.flow.library import CLIP_FUNCTIONS
from rnnlint.names import dotted
from rnnlint.nodes import find_all, keyword_arg
from rnnlint.rule import Invalid, Option, Rule, Valid, add_arg, insert_before, replace
from rnnlint.flow.training import (
    CLIP_METHOD_NAMES,
    Event,
    Optimizer,
    Scope,
    clip_covers,
    clip_placement,
    training_code,
    is_recurrent_expr,
    optimizer_at,
    recurrent_context,
)

_MANUAL_OPTIMIZATION = re.compile(r"automatic_optimization\s*=\s*False")
_WHY = "gradients of a recurrent network can explode through time (one large step turns the loss into NaN)"


class MissingGradClip(Rule):
    """Recurrent training without gradient clipping.

    **What it catches.** A training step of a model that contains an RNN,
    LSTM or GRU where ``backward()`` is followed by ``optimizer.step()`` (or
    ``scaler.step(optimizer)``) with no gradient clipping in between, in
    plain scripts, functions, methods, nested loops, Lightning manual
    optimization and Accelerate loops. Also a Lightning ``Trainer`` without
    ``gradient_clip_val`` that fits a recurrent LightningModule (reported
    at the Trainer, and at the module's ``training_step`` when the module is
    written in another file, where its author and pre-commit look), and Hugging
    Face ``TrainingArguments(max_grad_norm=0)`` (or ``None``) for a recurrent
    model. Clipping counts in every form: ``clip_grad_norm_`` /
    ``clip_grad_value_`` under any import or alias (and the deprecated
    ``clip_grad_norm``), ``accelerator.clip_grad_norm_``,
    ``fabric.clip_gradients``, a function of the project that clips (in the
    same file or imported from another one), Lightning's
    ``gradient_clip_val``, and Hugging Face's ``Trainer`` (it clips at 1.0 by
    default). With two optimizers, each step needs a clip of its own
    parameters. CNN, MLP and transformer training is not reported.

    **Why it matters.** A recurrent network multiplies the gradient by the
    same recurrent weights at every time step, so on long sequences its norm
    can grow exponentially. One exploding batch is enough for an update that
    throws the weights far away; the loss jumps and then turns NaN. Clipping
    the global gradient norm before the update is the standard remedy.

    **Example.**

        loss.backward()
        optimizer.step()          # RNN001

    becomes

        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()

    Under AMP ``scaler.unscale_(optimizer)`` is inserted first, so that the
    clip sees real gradients; with Accelerate the clip is
    ``accelerator.clip_grad_norm_``; for Lightning ``gradient_clip_val=1.0``
    is added to the ``Trainer``.

    **Fix safety.** Safe: clipping at a norm of 1.0 is the universally
    recommended remedy and leaves ordinary updates unchanged. The clipped
    parameters are the optimizer's own: its ``X.parameters()`` expression
    when that can be evaluated at the step, otherwise its ``param_groups``.
    ``import torch`` is added when needed.

    **Options.** ``max-norm`` (default 1.0): the norm the fix writes.
    """

    code = "RNN001"
    name = "missing-grad-clip"
    fix_applicability = Applicability.SAFE
    triggers = ("step(", "Trainer", "TrainingArguments")
    options = {"max-norm": Option(1.0, "max_norm written by the fix", minimum=0, exclusive_minimum=True, maximum=1e6)}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._trainers: list[tuple[str | None, cst.Call]] = []  # (assigned name, Trainer call)
        self._fits: list[cst.Call] = []
        self._evaluations: list[cst.Call] = []  # ``trainer.test(...)``, ``.validate``, ``.predict``
        self._hf_arguments: list[cst.Call] = []
        self._hf_trainers: list[cst.Call] = []

    # -- collection --------------------------------------------------------

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Call) and self._kind(node.value) == "lightning":
            for target in node.targets:
                self._trainers.append((dotted(target.target), node.value))

    def visit_Call(self, node: cst.Call) -> None:
        kind = self._kind(node)
        if kind == "lightning" and not any(node is call for _, call in self._trainers):
            self._trainers.append((None, node))
        elif kind == "hf-arguments":
            self._hf_arguments.append(node)
        elif kind == "hf-trainer":
            self._hf_trainers.append(node)
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "fit":
            self._fits.append(node)
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value in _EVALUATIONS:
            self._evaluations.append(node)

    def _kind(self, call: cst.Call) -> str | None:
        return _trainer_kind(self.ctx, call)

    def finish(self) -> None:
        f = training_code(self.ctx)
        for scope in f.scopes:
            for event in scope.events:
                if event.kind == "step":
                    self._check_step(scope, event)
        for name, call in self._trainers:
            self._check_lightning(name, call)
        self._check_lightning_modules()
        for call in self._hf_arguments:
            self._check_hf(call)

    # -- hand-written loops ----------------------------------------------

    def _check_step(self, scope: Scope, step: Event) -> None:
        events = scope.events
        at = events.index(step)
        backward = next((e for e in reversed(events[:at]) if e.kind == "backward"), None)
        if backward is None:
            return  # a step without a backward here (closure, helper): nothing to pair
        start = events.index(backward)
        optimizer = optimizer_at(self.ctx, scope, step.target)
        if any(e.kind == "clip" and clip_covers(self.ctx, e, optimizer) for e in events[start:at]):
            return
        if any(e.kind == "clip" and e.loop is step.loop and clip_placement(scope, e) for e in events):
            return  # a clip in the wrong place: RNN002 moves it
        if not recurrent_context(self.ctx, scope, optimizer):
            return
        shown = self.ctx.code(step.call.func.value) if isinstance(step.call.func, cst.Attribute) else "optimizer"
        target = step.target or shown
        step_text = f"{shown}.step({step.target})" if step.via == "scaler" else f"{target}.step()"
        without_groups = self._without_param_groups(step)
        fix_lines = self._fix_lines(scope, step, backward, optimizer) if without_groups is None else []
        if step.own_line:
            edits = [insert_before(step.statement, "\n".join(fix_lines))] if fix_lines else []
        elif any(isinstance(small, cst.Expr) and small.value is step.call for small in step.statement.body):
            # ``loss.backward(); opt.step()`` on one line: the clip goes between them, on that line
            edits = [replace(step.call, "; ".join([*fix_lines, self.ctx.code(step.call)]))] if fix_lines else []
        else:
            edits = []
        how = (f"clip the gradients of `{target}`'s parameters before step()" if without_groups is None else
               f"{without_groups.rsplit('.', 1)[-1]} has no param_groups to clip: clip the gradients it steps "
               f"with before step()")
        self.report(
            step.call,
            f"{step_text} updates the recurrent model without gradient clipping after backward(): "
            f"{_WHY}; {how}",
            fix=f"Insert clip_grad_norm_(..., max_norm={self.settings['max-norm']!r}) before step()",
            edits=edits,
            imports=self._imports() if edits and backward.via is None else (),
        )

    def _fix_lines(self, scope: Scope, step: Event, backward: Event, optimizer: Optimizer | None) -> list[str]:
        if not step.target:
            return []
        max_norm = f"max_norm={self.settings['max-norm']!r}"
        params = self._params(scope, optimizer, step.target)
        if backward.via == "accelerator":
            accelerator = dotted(backward.call.func.value)  # type: ignore[attr-defined]
            return [f"{accelerator}.clip_grad_norm_({params}, {max_norm})"]
        if backward.via == "fabric":
            return []  # fabric.clip_gradients needs the module: shown, not guessed
        lines = []
        if step.via == "scaler":
            events = scope.events
            window = events[events.index(backward): events.index(step)]
            if not any(e.kind == "unscale" and e.target == step.target for e in window):
                scaler = self.ctx.code(step.call.func.value)  # type: ignore[attr-defined]
                lines.append(f"{scaler}.unscale_({step.target})")
        lines.append(f"torch.nn.utils.clip_grad_norm_({params}, {max_norm})")
        return lines

    def _without_param_groups(self, step: Event) -> str | None:
        """The library optimizer class behind ``step`` when it has no ``param_groups`` (a
        ``DistributedOptimizer``): a clip of ``opt.param_groups`` would fail there, so no fix is offered."""
        receiver = step.call.func.value if isinstance(step.call.func, cst.Attribute) else None
        if receiver is None or step.via is not None:
            return None
        built = {v.value for v in values(self.ctx, receiver, step.call, models=True) if v.kind == LIBRARY}
        return next(iter(sorted(built & library.OPTIMIZERS_WITHOUT_PARAM_GROUPS)), None)

    def _params(self, scope: Scope, optimizer: Optimizer | None, target: str) -> str:
        """The optimizer's parameters as an expression valid at the step."""
        if optimizer is not None and _visible(self.ctx, scope, optimizer):
            return self.ctx.code(optimizer.params)  # type: ignore[arg-type]
        return f'[p for group in {target}.param_groups for p in group["params"]]'

    def _imports(self) -> tuple[str, ...]:
        return () if self.ctx.imports.names.get("torch") == "torch" else ("import torch",)

    # -- Lightning ---------------------------------------------------------

    def _check_lightning(self, name: str | None, call: cst.Call) -> None:
        if trainer_clips(flow_of(self.ctx)[0], call, site_of(self.ctx, call)) is not False:
            return
        clip = keyword_arg(call, "gradient_clip_val")
        models = [fitted_model(fit) for fit in self._fits if _fits_with(fit, name, call)]
        models = [m for m in models if m is not None]
        if not any(self._classes(m) for m in models) and _MANUAL_OPTIMIZATION.search(self.ctx.text):
            return  # a module of unknown class, in a file that optimizes by hand somewhere: may be that one
        if not models and any(_fits_with(e, name, call) for e in self._evaluations):
            return  # a Trainer that only tests, validates or predicts: it updates nothing
        if any(self._clips_itself(m) for m in models) or not self._recurrent(models):
            return
        max_norm = repr(self.settings["max-norm"])
        edit = replace(clip.value, max_norm) if clip is not None else add_arg(call, f"gradient_clip_val={max_norm}")
        from_cli = isinstance(call.func, cst.Attribute) and call.func.attr.value == "from_argparse_args"
        self.report(
            call,
            f"Lightning Trainer fits a recurrent model without gradient clipping"
            f"{' (--gradient_clip_val defaults to none)' if from_cli else ''}: {_WHY}; "
            f"set gradient_clip_val (e.g. {max_norm})",
            fix=f"Set gradient_clip_val={max_norm}",
            edits=[edit],
        )

    def _check_lightning_modules(self) -> None:
        """A recurrent LightningModule of this file fitted only by Trainers of other files that do not
        clip: reported at its ``training_step`` too, where the person who edits the module (and
        pre-commit, which checks that file alone) looks. The fix is the Trainer's, in its own file."""
        flow, facts = flow_of(self.ctx)
        for name, cls in facts.classes.items():
            step = facts.methods.get(cls, {}).get("training_step")
            if step is None or _handles_clipping(flow, facts.path, name):
                continue  # it clips in its own hooks, or optimizes by hand (its steps are judged as loops)
            trainers = [(call, site) for call, site in trainers_fitting(flow, facts.path, cls)
                        if trainer_clips(flow, call, site) is False]
            if not trainers or any(site.file is facts for _, site in trainers):
                continue  # none that leaves it unclipped, or the Trainer of this file is reported itself
            if not (self.ctx.is_recurrent(name) or is_recurrent(flow, Value(INSTANCE, name, cls, facts.path))):
                continue
            call, site = trainers[0]
            where = f"{flow.display(site.file.path)}:{flow.line(site.file.path, call)}"
            self.report(
                step.name,
                f"LightningModule {name} trains a recurrent model and the Trainer that fits it ({where}) "
                f"sets no gradient_clip_val: {_WHY}; set gradient_clip_val=1.0 on that Trainer, "
                f"or clip in configure_gradient_clipping",
                related=[r for call, site in trainers for r in related(
                    flow, site.file.path, call, "the Trainer that fits this module without clipping")],
            )

    def _clips_itself(self, model: cst.BaseExpression) -> bool:
        """A LightningModule that clips in its own hooks, or optimizes by hand (where the Trainer's
        ``gradient_clip_val`` is refused, and the hand-written step is judged as a loop)."""
        if any(self.ctx.index.reaches(self.ctx.path, c, CLIP_FUNCTIONS) for c in self._classes(model)):
            return True
        flow, _ = flow_of(self.ctx)
        return any(v.kind == INSTANCE and _handles_clipping(flow, v.path, v.value)
                   for v in values(self.ctx, model, models=True))

    def _classes(self, model: cst.BaseExpression) -> list[str]:
        """What built ``model``: ``LitTagger()`` -> LitTagger; ``model`` -> its assignments."""
        if isinstance(model, cst.Call):
            name = dotted(model.func)
            return [name] if name else []
        return training_code(self.ctx).models.get(dotted(model) or "", [])

    def _recurrent(self, models: list[cst.BaseExpression]) -> bool:
        """Is one of the models a framework trains recurrent? Unknown models: does the file
        build a recurrent module at all?"""
        verdicts = []
        for model in models:
            classes = self._classes(model)
            flow, _ = flow_of(self.ctx)
            resolved = recurrent(flow, values(self.ctx, model, models=True))
            if resolved:
                verdicts.append(True)
            elif classes:
                verdicts.append(any(self.ctx.is_recurrent(c) for c in classes))
            else:
                verdicts.append(is_recurrent_expr(self.ctx, model, None))
        known = [v for v in verdicts if v is not None]
        if known:
            return any(known)
        return training_code(self.ctx).mentions_recurrent

    # -- Hugging Face ------------------------------------------------------

    def _check_hf(self, call: cst.Call) -> None:
        arg = keyword_arg(call, "max_grad_norm")
        if arg is None or not _is_zero_or_none(self.ctx, arg.value):
            return  # the Trainer clips at 1.0 by default
        models = [keyword_arg(t, "model") for t in self._hf_trainers]
        if not self._recurrent([m.value for m in models if m is not None]):
            return
        max_norm = repr(self.settings["max-norm"])
        self.report(
            arg.value,
            f"max_grad_norm={self.ctx.code(arg.value)} turns off the Trainer's gradient clipping for a "
            f"recurrent model: {_WHY}; keep max_grad_norm={max_norm}",
            fix=f"Set max_grad_norm={max_norm}",
            edits=[replace(arg.value, max_norm)],
        )


def _visible(ctx, scope: Scope, optimizer: Optimizer) -> bool:
    """Can the optimizer's ``X.parameters()`` be evaluated again at the step in ``scope``?"""
    params = optimizer.params
    if not (isinstance(params, cst.Call) and isinstance(params.func, cst.Attribute)):
        return False
    if params.func.attr.value != "parameters" or params.args:
        return False
    owner = dotted(params.func.value)
    if owner is None:
        return False
    head = owner.split(".")[0]
    if head == "self":
        return scope.cls is not None and optimizer.scope is not None and optimizer.scope.cls is scope.cls
    module_scope = training_code(ctx).scopes[0]
    return head in scope.assigned or head in scope.params or head in module_scope.assigned


def _trainer_kind(ctx, call: cst.Call) -> str | None:
    """"lightning" for ``Trainer(...)`` and ``Trainer.from_argparse_args(...)``, "hf-arguments",
    "hf-trainer", or None."""
    func = call.func
    last = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
    if last not in ("Trainer", "from_argparse_args", "TrainingArguments", "Seq2SeqTrainingArguments",
                    "Seq2SeqTrainer"):
        return None
    if is_trainer_call(ctx.imports, call):
        return "lightning"
    qualname = ctx.qualname(func)
    if qualname in library.HF_TRAINING_ARGUMENTS:
        return "hf-arguments"
    if qualname in library.HF_TRAINERS:
        return "hf-trainer"
    return None


def _handles_clipping(flow, path, class_name: str) -> bool:
    """Does the LightningModule ``class_name`` of ``path``, or a base of it in the project, clip in its
    own hooks (``clip_grad_norm_`` anywhere it calls, ``self.clip_gradients(...)`` in
    ``configure_gradient_clipping``) or optimize by hand (``automatic_optimization = False``)?"""
    if flow.index.reaches(path, class_name, CLIP_FUNCTIONS):
        return True
    for file, name, _ in flow.index.lineage(path, class_name):
        facts = flow.file(file)
        cls = facts.classes.get(name) if facts is not None else None
        if cls is None:
            continue
        if _MANUAL_OPTIMIZATION.search(facts.module.code_for_node(cls)) or any(
                isinstance(c.func, cst.Attribute) and c.func.attr.value in CLIP_METHOD_NAMES
                for c in find_all(cls, cst.Call)):
            return True
    return False


_EVALUATIONS = frozenset({"test", "validate", "predict"})


def _is_zero_or_none(ctx, value: cst.BaseExpression) -> bool:
    if isinstance(value, cst.Name) and value.value == "None":
        return True
    return number(ctx, value) == 0


def _fits_with(fit: cst.Call, name: str | None, trainer: cst.Call) -> bool:
    receiver = fit.func.value  # type: ignore[attr-defined]
    return receiver is trainer or (name is not None and dotted(receiver) == name)


# -- examples ------------------------------------------------------------------

_MODEL = """
    import torch
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, vocab=100, hidden=64):
            super().__init__()
            self.embed = nn.Embedding(vocab, 32)
            self.lstm = nn.LSTM(32, hidden, batch_first=True)
            self.out = nn.Linear(hidden, 10)

        def forward(self, x):
            h, _ = self.lstm(self.embed(x))
            return self.out(h[:, -1])
    """

_LOOP = _MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
{clip}        optimizer.step()
    """

_SEQ2SEQ_FILES = {
    "models/__init__.py": "",
    "models/seq2seq.py": """
        from torch import nn

        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.GRU(32, 64, batch_first=True)

        class Decoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.GRU(32, 64, batch_first=True)
                self.out = nn.Linear(64, 100)
        """,
    "utils.py": """
        import torch

        def clip_gradients(model, max_norm=1.0):
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        """,
}

_LIGHTNING_MODULE = """
    import torch
    from torch import nn
    import lightning as L

    class LitTagger(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(16, 32, batch_first=True)
            self.head = nn.Linear(32, 2)

        def training_step(self, batch, batch_idx):
            x, y = batch
            out, _ = self.rnn(x)
            return nn.functional.cross_entropy(self.head(out[:, -1]), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)
    """

_FITTED_ELSEWHERE = """
    import lightning as L
    from train import LitTagger

    def main(loader):
        model = LitTagger()
        trainer = L.Trainer(max_epochs=5{clip})
        trainer.fit(model, loader)
    """

_LIGHTNING_PYTORCH = _LIGHTNING_MODULE.replace(
    "import lightning as L", "import lightning.pytorch as L\n    from lightning.pytorch import Trainer"
)

MissingGradClip.VALID = [
    # clipped between backward and step
    _LOOP.format(clip="        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"),
    # value clipping, through an alias import
    _LOOP.replace("import torch.nn as nn\n", "import torch.nn as nn\n    from torch.nn.utils import clip_grad_value_ as clipv\n").format(
        clip="        clipv(model.parameters(), 0.5)\n"
    ),
    # the deprecated spelling, through `import torch.nn as tnn`
    _LOOP.replace("import torch.nn as nn\n", "import torch.nn as nn\n    import torch.nn as tnn\n").format(
        clip="        tnn.utils.clip_grad_norm(model.parameters(), 1.0)\n"
    ),
    # a CNN does not need it
    """
    import torch
    from torch import nn, optim

    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    opt = optim.SGD(net.parameters(), lr=0.1)
    for images, labels in loader:
        opt.zero_grad()
        nn.functional.cross_entropy(net(images), labels).backward()
        opt.step()
    """,
    # nor does a transformer
    """
    import torch
    from torch import nn

    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def train(loader):
        for x, y in loader:
            loss = (model(x) - y).pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    """,
    # a helper of the project that clips, imported from another file
    Valid("""
    import torch
    from models.seq2seq import Encoder
    from utils import clip_gradients

    model = Encoder()
    optimizer = torch.optim.Adam(model.parameters())
    for x in loader:
        model(x)[0].sum().backward()
        clip_gradients(model)
        optimizer.step()
        optimizer.zero_grad()
    """, files=_SEQ2SEQ_FILES),
    # a helper defined later in the same file
    _MODEL + """
    def train(model, loader, optimizer):
        for x, y in loader:
            nn.functional.cross_entropy(model(x), y).backward()
            clip(model)
            optimizer.step()

    def clip(model):
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    """,
    # AMP, done right
    _MODEL + """
    model = Tagger().cuda()
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    """,
    # Accelerate
    _MODEL + """
    from accelerate import Accelerator

    accelerator = Accelerator()
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters())
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    """,
    # Lightning with clipping configured
    _LIGHTNING_MODULE + """
    trainer = L.Trainer(max_epochs=5, gradient_clip_val=0.5)
    trainer.fit(LitTagger(), loader)
    """,
    # Lightning fitting a non-recurrent module, in a file that also has an LSTM elsewhere
    _LIGHTNING_MODULE + """
    class LitMLP(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))

    mlp = LitMLP()
    L.Trainer(max_epochs=5).fit(mlp, loader)
    """,
    # the LightningModule's own file, fitted by a Trainer of another file that clips
    Valid(_LIGHTNING_MODULE, files={"main.py": _FITTED_ELSEWHERE.format(clip=", gradient_clip_val=0.5")}),
    # a second Trainer that only tests: it updates nothing
    Valid(_LIGHTNING_MODULE + """
    model = LitTagger()
    L.Trainer(max_epochs=5, gradient_clip_val=1.0).fit(model, loader)
    tester = L.Trainer(devices=1)
    tester.test(model, loader)
    """),
    # the module clips in a hook it inherits from a base of the project
    Valid("""
    import lightning as L
    from lit import LitTagger

    class ClippedTagger(LitTagger):
        pass

    L.Trainer(max_epochs=5).fit(ClippedTagger(), loader)
    """, files={"lit.py": _LIGHTNING_MODULE + """
        def configure_gradient_clipping(self, optimizer, *args, **kwargs):
            self.clip_gradients(optimizer, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
    """}),
    # the module, in another file, optimizes by hand (Lightning refuses gradient_clip_val then): its own
    # step is judged as a loop, where it is written
    Valid("""
    import lightning as L
    from lit import LitTagger

    L.Trainer(max_epochs=5).fit(LitTagger(), loader)
    """, files={"lit.py": _LIGHTNING_MODULE.replace(
        "super().__init__()", "super().__init__()\n            self.automatic_optimization = False")}),
    # a Trainer without gradient_clip_val fitting a module that clips in its own hook
    Valid(_LIGHTNING_MODULE + """
        def configure_gradient_clipping(self, optimizer, *args, **kwargs):
            self.clip_gradients(optimizer, gradient_clip_val=0.5, gradient_clip_algorithm="norm")

    L.Trainer(max_epochs=5).fit(LitTagger(), loader)
    """),
    # ... or that does not, while the module clips in its own hook
    Valid(_LIGHTNING_MODULE + """
        def configure_gradient_clipping(self, optimizer, *args, **kwargs):
            self.clip_gradients(optimizer, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
    """, files={"main.py": _FITTED_ELSEWHERE.format(clip="")}),
    # Hugging Face Trainer clips by default
    _MODEL + """
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir="out", learning_rate=1e-3)
    Trainer(model=Tagger(), args=args, train_dataset=data).train()
    """,
    # suppressed on the reported line
    _LOOP.replace("    optimizer.step()", "    optimizer.step()  # noqa: RNN001").format(clip=""),
]

MissingGradClip.INVALID = [
    # the plain loop
    Invalid(_LOOP.format(clip=""), lines=[22], fixed=_LOOP.format(
        clip="        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n")),
    # the max-norm option changes the value written
    Invalid(_LOOP.format(clip=""), lines=[22], options={"max-norm": 0.5}, fixed=_LOOP.format(
        clip="        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)\n")),
    # inside a function, `torch` not imported (only `import torch.nn as tnn`): it is added
    Invalid("""
    import torch.nn as tnn
    from torch import optim

    def train(loader, epochs=10):
        model = tnn.GRU(8, 16)
        opt = optim.RMSprop(model.parameters(), lr=1e-3)
        for epoch in range(epochs):
            for x, y in loader:
                opt.zero_grad()
                out, _ = model(x)
                tnn.functional.mse_loss(out, y).backward()
                opt.step()
    """, lines=[12], fixed="""\
import torch.nn as tnn
from torch import optim
import torch

def train(loader, epochs=10):
    model = tnn.GRU(8, 16)
    opt = optim.RMSprop(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            out, _ = model(x)
            tnn.functional.mse_loss(out, y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            opt.step()
"""),
    # a method of a trainer class; the optimizer is built in __init__
    Invalid(_MODEL + """
    class Trainer:
        def __init__(self):
            self.model = Tagger()
            self.optimizer = torch.optim.Adam(self.model.parameters())

        def train_epoch(self, loader):
            for x, y in loader:
                self.optimizer.zero_grad()
                nn.functional.cross_entropy(self.model(x), y).backward()
                self.optimizer.step()
    """, lines=[24], fixed=_MODEL + """
    class Trainer:
        def __init__(self):
            self.model = Tagger()
            self.optimizer = torch.optim.Adam(self.model.parameters())

        def train_epoch(self, loader):
            for x, y in loader:
                self.optimizer.zero_grad()
                nn.functional.cross_entropy(self.model(x), y).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=1.0)
                self.optimizer.step()
    """),
    # the optimizer comes from the caller: its param_groups are clipped
    Invalid(_MODEL + """
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()
    """, lines=[19], fixed=_MODEL + """
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], max_norm=1.0)
        optimizer.step()
        return loss.item()
    """),
    # AMP: unscale first
    Invalid(_MODEL + """
    model = Tagger().cuda()
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda"):
            loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    """, lines=[23], fixed=_MODEL + """
    model = Tagger().cuda()
    optimizer = torch.optim.Adam(model.parameters())
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda"):
            loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
    """),
    # seq2seq from another file, two optimizers, only the encoder clipped
    Invalid("""
    import torch
    from models.seq2seq import Encoder, Decoder

    encoder = Encoder()
    decoder = Decoder()
    enc_opt = torch.optim.Adam(encoder.parameters())
    dec_opt = torch.optim.Adam(decoder.parameters())
    for src, tgt in loader:
        loss = decoder(encoder(src)).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        enc_opt.step()
        dec_opt.step()
    """, lines=[13], files=_SEQ2SEQ_FILES, fixed="""\
import torch
from models.seq2seq import Encoder, Decoder

encoder = Encoder()
decoder = Decoder()
enc_opt = torch.optim.Adam(encoder.parameters())
dec_opt = torch.optim.Adam(decoder.parameters())
for src, tgt in loader:
    loss = decoder(encoder(src)).sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
    enc_opt.step()
    torch.nn.utils.clip_grad_norm_(decoder.parameters(), max_norm=1.0)
    dec_opt.step()
"""),
    # Accelerate: the accelerator clips (it unscales under mixed precision)
    Invalid(_MODEL + """
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="fp16")
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters())
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        accelerator.backward(nn.functional.cross_entropy(model(x), y))
        optimizer.step()
        optimizer.zero_grad()
    """, lines=[23], fixed=_MODEL + """
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="fp16")
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters())
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        accelerator.backward(nn.functional.cross_entropy(model(x), y))
        accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        optimizer.zero_grad()
    """),
    # Lightning 2 (`import lightning as L`)
    Invalid(_LIGHTNING_MODULE + """
    model = LitTagger()
    trainer = L.Trainer(max_epochs=5, accelerator="auto")
    trainer.fit(model, loader)
    """, lines=[20], fixed=_LIGHTNING_MODULE + """
    model = LitTagger()
    trainer = L.Trainer(max_epochs=5, accelerator="auto", gradient_clip_val=1.0)
    trainer.fit(model, loader)
    """),
    # pytorch_lightning, multi-line Trainer call, module in another file
    Invalid("""
    import pytorch_lightning as pl
    from lit import LitTagger

    def main():
        trainer = pl.Trainer(
            max_epochs=5,
            devices=1,
        )
        trainer.fit(LitTagger(), train_dataloaders=loader)
    """, lines=[5], files={"lit.py": _LIGHTNING_MODULE.replace("import lightning as L", "import pytorch_lightning as L")},
        fixed="""\
import pytorch_lightning as pl
from lit import LitTagger

def main():
    trainer = pl.Trainer(
        max_epochs=5,
        devices=1,
        gradient_clip_val=1.0,
    )
    trainer.fit(LitTagger(), train_dataloaders=loader)
"""),
    # the LightningModule's own file, fitted by a Trainer of another file that does not clip: reported at
    # its training_step too (pre-commit checks this file alone); the fix belongs to the Trainer's file
    Invalid(_LIGHTNING_MODULE, lines=[11], files={"main.py": _FITTED_ELSEWHERE.format(clip="")}),
    # ... also when that Trainer is made by a factory function of a third file
    Invalid(_LIGHTNING_MODULE, lines=[11], files={
        "trainers.py": """
            import lightning as L

            def make_trainer(epochs):
                return L.Trainer(max_epochs=epochs)
            """,
        "main.py": """
            from train import LitTagger
            from trainers import make_trainer

            trainer = make_trainer(5)
            trainer.fit(LitTagger(), loader)
            """}),
    # the module class picked from a registry (another file) by a name known only at run time: any
    # entry may be the one fitted
    Invalid("""
    import lightning as L
    from registry import MODELS

    def main(name, loader):
        model = MODELS[name]()
        L.Trainer(max_epochs=5).fit(model, loader)
    """, lines=[6], files={"registry.py": "from lit import LitTagger\nMODELS = {'lstm': LitTagger}\n",
                           "lit.py": _LIGHTNING_MODULE}, fixed="""\
import lightning as L
from registry import MODELS

def main(name, loader):
    model = MODELS[name]()
    L.Trainer(max_epochs=5, gradient_clip_val=1.0).fit(model, loader)
"""),
    # lightning.pytorch, clipping switched off explicitly
    Invalid(_LIGHTNING_PYTORCH + """
    Trainer(gradient_clip_val=None).fit(LitTagger())
    """, lines=[20], fixed=_LIGHTNING_PYTORCH + """
    Trainer(gradient_clip_val=1.0).fit(LitTagger())
    """),
    # Hugging Face Trainer with clipping turned off
    Invalid(_MODEL + """
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir="out", max_grad_norm=0)
    Trainer(model=Tagger(), args=args, train_dataset=data).train()
    """, lines=[17], fixed=_MODEL + """
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir="out", max_grad_norm=1.0)
    Trainer(model=Tagger(), args=args, train_dataset=data).train()
    """),
]
