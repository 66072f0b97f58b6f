"""Weight initialisation helpers shared by the policy modules."""

from __future__ import annotations

from typing import TypeVar

from torch import nn

LayerT = TypeVar("LayerT", bound=nn.Module)


def orthogonal_init(layer: LayerT, gain: float) -> LayerT:
    """Initialise ``layer.weight`` orthogonally with ``gain`` and ``layer.bias`` (if any) to zero.

    Works for any module with a ``weight`` of at least 2 dimensions (``nn.Linear``, convolutions).
    Returns the layer so it can be used inline: ``orthogonal_init(nn.Linear(4, 2), 0.01)``.
    """
    weight = getattr(layer, "weight", None)
    if weight is None or weight.dim() < 2:
        raise TypeError(
            f"orthogonal_init needs a layer with a weight of at least 2 dims, got {type(layer).__name__}"
        )
    nn.init.orthogonal_(weight, gain=gain)
    bias = getattr(layer, "bias", None)
    if bias is not None:
        nn.init.zeros_(bias)
    return layer
