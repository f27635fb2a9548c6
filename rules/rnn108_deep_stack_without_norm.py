from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid, Option


class DeepStackWithoutNorm(GraphRule):
    """Three or more stacked recurrent layers with nothing between them (off by default).

    **What it catches.** A recurrent module with ``num_layers`` of
    ``min-layers`` (3) or more, or a chain of recurrent modules in the traced
    graph (``self.l1`` -> ``self.l2`` -> ``self.l3``, or a loop over a
    ``ModuleList``) totalling that many layers where no ``LayerNorm`` or
    residual connection (``x = x + layer(x)``) sits between them -- dropout,
    indexing and reshapes do not count. Off by default: select ``RNN108``.

    **Why it matters.** Each stacked recurrent layer adds depth in a second
    direction: gradients now vanish or explode across layers as well as
    across time, and deep LSTM stacks without normalisation or residual paths
    are notoriously slow to train (GNMT needed residual connections beyond
    4 layers).

    **Example.**

        self.rnn = nn.LSTM(64, 64, num_layers=4)    # RNN108

    **Fix safety.** No automatic fix: stack single-layer modules with a
    ``LayerNorm`` and a residual connection between them, or use fewer layers.

    **Options.** ``min-layers``: how many stacked layers are reported.
    """

    code = "RNN108"
    name = "deep-stack-without-norm"
    default_enabled = False
    options = {"min-layers": Option(3, "report stacks with at least this many recurrent layers", minimum=2, maximum=1000)}

    def measure(self, run) -> None:
        from rnnlint.graph.measure import describe, layers_of

        minimum = self.settings["min-layers"]
        for path, module in run.recurrent:
            if layers_of(module) >= minimum:
                run.report(self.code, f"`{run.label(path)}` ({describe(module)}) stacks "
                           f"{layers_of(module)} recurrent layers with no normalisation or residual path between "
                           "them: gradients vanish or explode across layers as well as across time. Stack "
                           "single-layer modules with LayerNorm and residual connections, or use fewer layers.", path)
        graph = run.graph
        if graph is None:
            return
        infos = {node: run.classify(node) for node in graph.nodes}
        recurrent = [n for n, i in infos.items() if i.kind == "recurrent" and i.module in run.modules]

        def following(node):
            found, todo, seen = [], list(node.users), set()
            while todo:
                user = todo.pop()
                if user in seen:
                    continue
                seen.add(user)
                kind = infos[user].kind
                if kind == "recurrent" and infos[user].module != infos[node].module:
                    found.append(user)
                elif kind == "shape":
                    todo.extend(user.users)
            return found

        nexts = {n: following(n) for n in recurrent}
        has_previous = {m for n in recurrent for m in nexts[n]}
        memo: dict = {}

        def chain(node) -> list:
            if node not in memo:
                memo[node] = []
                best = max((chain(m) for m in nexts[node]), key=lambda c: sum(layers_of(run.modules[infos[x].module]) for x in c), default=[])
                memo[node] = [node, *best]
            return memo[node]

        reported = set()
        for node in recurrent:
            if node in has_previous:
                continue
            nodes = chain(node)
            paths = list(dict.fromkeys(infos[n].module for n in nodes))
            total = sum(layers_of(run.modules[p]) for p in paths)
            if len(paths) >= 2 and total >= minimum and paths[0] not in reported:
                reported.add(paths[0])
                run.report(self.code, f"{total} recurrent layers are stacked ({' -> '.join(f'`{p}`' for p in paths)}) "
                           "with no LayerNorm or residual connection between them: gradients vanish or explode "
                           "across layers as well as across time. Add LayerNorm and residual connections between "
                           "the layers, or use fewer layers.", paths[0])


DeepStackWithoutNorm.VALID = [
    """
    import torch.nn as nn

    class Residual(nn.Module):
        def __init__(self, hidden=16, depth=4):
            super().__init__()
            self.layers = nn.ModuleList(nn.LSTM(hidden, hidden) for _ in range(depth))
            self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(depth))

        def forward(self, x):
            for layer, norm in zip(self.layers, self.norms):
                out, _ = layer(norm(x))
                x = x + out
            return x
    """,
]
DeepStackWithoutNorm.INVALID = [
    Invalid("""
    import torch.nn as nn

    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(8, 16, num_layers=4)
    """, lines=[6]),
    Invalid("""
    import torch.nn as nn

    class Chain(nn.Module):
        def __init__(self, hidden=16):
            super().__init__()
            self.first = nn.GRU(8, hidden, num_layers=2)
            self.drop = nn.Dropout(0.2)
            self.second = nn.GRU(hidden, hidden)

        def forward(self, x):
            out, _ = self.first(x)
            out, _ = self.second(self.drop(out))
            return out
    """, lines=[6]),
]
