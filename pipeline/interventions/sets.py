"""Many steering settings on one model at once, each batch row carrying its own (rows = set x prompt):

    NeuronSets([{layer: [neuron, ...]}, ...], alphas)        set k scales its neurons by alphas[k]
    DirectionSets(layers, vectors, strengths)                set k adds strengths[k] * vectors[k] after layers[k]
    HeadSets([{layer: {head: vector}}, ...], strengths)      set k shifts its heads by strengths[k] * vector

`context(lm, k)` is set k alone, the one-set hook of pipeline.interventions.hooks. `install(lm)`
puts every set on the model together and returns a `Rows` handle: `rows.use(set_of_row)` says
which set each batch row of the following forward passes belongs to (call it again when rows
leave the batch). A row gets the numbers its set's own hook computes (the same float32 deltas,
cast the same way; the same multiplication of the same neurons), and rows of other sets are left
untouched, so each row's activations are those of its set run alone. `rows.first_layer` is the
lowest decoder layer a hook changes: below it every set computes the same thing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.interventions.hooks import add_direction, head_slices, scale_neurons, shift_heads
from pipeline.models import LoadedModel


class Rows:
    """Installed hooks of a family of sets; `use(set_of_row)` (a LongTensor (R,)) before a pass."""

    def __init__(self, first_layer: int):
        self.first_layer = first_layer
        self.handles: list[Any] = []
        self.updates: list[Callable[[Any], None]] = []

    def use(self, set_of_row: Any) -> None:
        for update in self.updates:
            update(set_of_row)


@contextlib.contextmanager
def _installed(lm: LoadedModel, first_layer: int | None, build: Callable[[Rows], None]) -> Iterator[Rows]:
    rows = Rows(lm.n_layers if first_layer is None else first_layer)
    try:
        build(rows)
        yield rows
    finally:
        for handle in rows.handles:
            handle.remove()


def _param(lm: LoadedModel) -> Any:
    return next(lm.model.parameters())


@dataclass(frozen=True)
class NeuronSets:
    """Set k multiplies the FFN neurons neurons[k] ({layer: [neuron, ...]}) by alphas[k]."""

    neurons: Sequence[Mapping[int, Sequence[int]]]
    alphas: Sequence[float]

    def __len__(self) -> int:
        return len(self.alphas)

    def subset(self, ks: Sequence[int]) -> NeuronSets:
        return NeuronSets([self.neurons[k] for k in ks], [self.alphas[k] for k in ks])

    def context(self, lm: LoadedModel, k: int) -> contextlib.AbstractContextManager:
        return scale_neurons(lm, self.neurons[k], self.alphas[k])

    def install(self, lm: LoadedModel) -> contextlib.AbstractContextManager[Rows]:
        import torch

        layers = sorted({int(l_) for n in self.neurons for l_, idx in n.items() if len(idx)})
        device = _param(lm).device

        def build(rows: Rows) -> None:
            alpha = torch.tensor([float(a) for a in self.alphas], dtype=torch.float32, device=device)  # (S,)
            for layer in layers:
                chosen = [list(dict.fromkeys(int(i) for i in n.get(layer, ()))) for n in self.neurons]
                width = max(len(c) for c in chosen)
                index = torch.zeros(len(chosen), width, dtype=torch.long, device=device)  # (S, K) padded
                valid = torch.zeros(len(chosen), width, dtype=torch.bool, device=device)
                for k, c in enumerate(chosen):
                    index[k, : len(c)] = torch.tensor(c, dtype=torch.long)
                    valid[k, : len(c)] = True
                state: dict[str, Any] = {}

                def update(set_of_row: Any, index: Any = index, valid: Any = valid, state: dict[str, Any] = state) -> None:
                    ok = valid[set_of_row]  # (R, K)
                    row = torch.arange(len(set_of_row), device=device)[:, None].expand_as(ok)
                    state["row"], state["col"] = row[ok], index[set_of_row][ok]  # (M,) each
                    state["alpha"] = alpha[set_of_row][:, None].expand_as(ok)[ok][:, None]  # (M, 1)

                def pre_hook(module: Any, args: tuple[Any, ...], state: dict[str, Any] = state) -> None:
                    if len(state["row"]):
                        args[0][state["row"], :, state["col"]] *= state["alpha"]  # (M, T) entries, in place

                rows.updates.append(update)
                rows.handles.append(lm.mlp(layer).down_proj.register_forward_pre_hook(pre_hook))

        return _installed(lm, layers[0] if layers else None, build)


def _select(has: Any, set_of_row: Any) -> Any:
    """Rows whose set has an entry at a site: None when every row has one (no indexing needed)."""
    import torch

    mine = has[set_of_row]
    return None if bool(mine.all()) else torch.nonzero(mine).flatten()


@dataclass(frozen=True)
class DirectionSets:
    """Set k adds strengths[k] * vectors[k] (d_model,) to the residual stream after layer layers[k]."""

    layers: Sequence[int]
    vectors: Sequence[Any]
    strengths: Sequence[float]

    def __len__(self) -> int:
        return len(self.strengths)

    def subset(self, ks: Sequence[int]) -> DirectionSets:
        return DirectionSets([self.layers[k] for k in ks], [self.vectors[k] for k in ks], [self.strengths[k] for k in ks])

    def context(self, lm: LoadedModel, k: int) -> contextlib.AbstractContextManager:
        return add_direction(lm, self.layers[k], self.vectors[k], self.strengths[k])

    def install(self, lm: LoadedModel) -> contextlib.AbstractContextManager[Rows]:
        import torch

        p = _param(lm)
        layers = sorted({int(x) for x in self.layers})

        def build(rows: Rows) -> None:
            for layer in layers:
                has = torch.tensor([int(x) == layer for x in self.layers], device=p.device)
                # each set's delta exactly as add_direction makes it: float32 vector x strength, then cast
                table = torch.stack([torch.as_tensor(v, dtype=torch.float32) * s if int(x) == layer
                                     else torch.zeros(lm.d_model)
                                     for x, v, s in zip(self.layers, self.vectors, self.strengths, strict=True)])
                table = table.to(device=p.device, dtype=p.dtype)  # (S, D)
                state: dict[str, Any] = {}

                def update(set_of_row: Any, has: Any = has, table: Any = table, state: dict[str, Any] = state) -> None:
                    state["sel"] = sel = _select(has, set_of_row)
                    mine = set_of_row if sel is None else set_of_row[sel]
                    state["delta"] = table[mine][:, None, :]  # (R or M, 1, D)

                def hook(module: Any, args: tuple[Any, ...], output: Any, state: dict[str, Any] = state) -> Any:
                    h = output[0] if isinstance(output, tuple) else output
                    sel, delta = state["sel"], state["delta"]
                    if sel is None:
                        h = h + delta
                    elif len(sel):
                        h = h.index_add(0, sel, delta.expand(len(sel), *h.shape[1:]))
                    return (h, *output[1:]) if isinstance(output, tuple) else h

                rows.updates.append(update)
                rows.handles.append(lm.layers[layer].register_forward_hook(hook))

        return _installed(lm, layers[0] if layers else None, build)


@dataclass(frozen=True)
class HeadSets:
    """Set k adds strengths[k] * shifts[k][layer][head] (head_dim,) to those heads' outputs."""

    shifts: Sequence[Mapping[int, Mapping[int, Any]]]
    strengths: Sequence[float]

    def __len__(self) -> int:
        return len(self.strengths)

    def subset(self, ks: Sequence[int]) -> HeadSets:
        return HeadSets([self.shifts[k] for k in ks], [self.strengths[k] for k in ks])

    def context(self, lm: LoadedModel, k: int) -> contextlib.AbstractContextManager:
        return shift_heads(lm, self.shifts[k], self.strengths[k])

    def install(self, lm: LoadedModel) -> contextlib.AbstractContextManager[Rows]:
        import torch

        p = _param(lm)
        sites = sorted({(int(layer), int(head)) for s in self.shifts for layer, heads in s.items() for head in heads})

        def build(rows: Rows) -> None:
            by_layer: dict[int, list[tuple[slice, Any, Any]]] = {}
            for layer, head in sites:
                vectors = [s.get(layer, {}).get(head) for s in self.shifts]
                has = torch.tensor([v is not None for v in vectors], device=p.device)
                # each set's delta exactly as shift_heads makes it: float32 vector x strength, then cast
                table = torch.stack([torch.as_tensor(v, dtype=torch.float32) * s if v is not None
                                     else torch.zeros(lm.head_dim) for v, s in zip(vectors, self.strengths, strict=True)])
                by_layer.setdefault(layer, []).append((head_slices(lm, [head])[0], has, table.to(device=p.device,
                                                                                                   dtype=p.dtype)))
            for layer, heads in by_layer.items():
                state: list[tuple[slice, Any, Any]] = []

                def update(set_of_row: Any, heads: Any = heads, state: list[Any] = state) -> None:
                    state.clear()
                    for part, has, table in heads:
                        sel = _select(has, set_of_row)
                        mine = set_of_row if sel is None else set_of_row[sel]
                        state.append((part, sel, table[mine][:, None, :]))  # (R or M, 1, head_dim)

                def pre_hook(module: Any, args: tuple[Any, ...], state: list[Any] = state) -> None:
                    x = args[0]  # (R, T, n_heads * head_dim), in place: the attention output, a temporary
                    for part, sel, delta in state:
                        if sel is None:
                            x[..., part] += delta
                        elif len(sel):
                            x[sel, :, part] += delta

                rows.updates.append(update)
                rows.handles.append(lm.attn(layer).o_proj.register_forward_pre_hook(pre_hook))

        return _installed(lm, sites[0][0] if sites else None, build)


SteeringSets = NeuronSets | DirectionSets | HeadSets
