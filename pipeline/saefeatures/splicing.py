"""A layer's output replaced, and only the layers above it run: the spliced loss without a full pass.

The residual stream after every layer comes from one unmodified pass (`layer_outputs`). Replacing
layer L's output by a reconstruction (`spliced`), zeros or the mean, and running only layers
L+1.. on it (`from_layer`) gives exactly what a full pass with a forward hook on layer L gives: the
same operations on the same batch (tests/test_saefeatures.py checks it bit for bit at every layer).
floor.py and the layer sweep's reconstruction (sweep_reconstruction.py) read the loss this way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def layer_outputs(lm: Any, ids: Any) -> tuple[Any, dict[int, Any]]:
    """One unmodified pass: the last hidden state (after the final norm) and the residual stream
    after every layer, {layer: (B, T, D)}."""
    import torch

    from pipeline.saefeatures.residuals import capture, decoder_only

    with torch.inference_mode(), capture(lm, range(lm.n_layers), stop=False) as acts:
        hidden = decoder_only(lm)(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).last_hidden_state
    return hidden, dict(acts)


@contextlib.contextmanager
def _layers_below_skipped(lm: Any, start: int) -> Iterator[None]:
    """The decoder with layers below `start` replaced by identities (their output is given)."""
    import torch

    class Skip(torch.nn.Module):
        def forward(self, hidden_states: Any, *args: Any, **kwargs: Any) -> Any:
            return hidden_states

    saved = [lm.layers[i] for i in range(start)]
    try:
        for i in range(start):
            lm.layers[i] = Skip()
        yield
    finally:
        for i, layer in enumerate(saved):
            lm.layers[i] = layer


def from_layer(lm: Any, residual: Any, layer: int) -> Any:
    """The last hidden state of the layers above `layer` run on `residual`, the stream after it
    (positions and masks as in a full pass; Gemma scales token embeddings inside the embedding
    module, which inputs_embeds bypasses): what a full pass gives with `layer`'s output replaced."""
    import torch

    from pipeline.saefeatures.residuals import decoder_only

    mask = torch.ones(residual.shape[:2], dtype=torch.long)
    with torch.inference_mode(), _layers_below_skipped(lm, layer + 1):
        return decoder_only(lm)(inputs_embeds=residual, attention_mask=mask, use_cache=False).last_hidden_state


def replaced(h: Any, x_hat: Any) -> Any:
    """The residual stream `h` (B, T, D) with every position after <bos> replaced by `x_hat`
    (B, T-1, D), or by one vector (D,) at every such position."""
    import torch

    return torch.cat([h[:, :1], x_hat.to(h.dtype).expand(h.shape[0], h.shape[1] - 1, h.shape[2])], dim=1)


def spliced(dictionary: Any, h: Any) -> Any:
    """The residual stream `h` with every position after <bos> replaced by its reconstruction."""
    return replaced(h, dictionary.decode(dictionary.encode(h[:, 1:].float())))
