"""Reversible interventions on a loaded model, as context managers that remove their hooks on exit,
even when the body raises:

    scale_neurons(lm, {layer: [neuron, ...]}, alpha)     FFN neurons (input of down_proj) x alpha
    add_direction(lm, layer, direction, alpha)           residual stream after `layer` + alpha * direction
    shift_heads(lm, {layer: {head: vector}}, strength)   attention heads (input of o_proj) + strength * vector

alpha = 1 (scaling) and strength 0 (adding) leave every logit exactly as it was.
"""

from pipeline.interventions.hooks import add_direction, scale_neurons, shift_heads

__all__ = ["add_direction", "scale_neurons", "shift_heads"]
