"""Probe: the coordinate check of Yang et al. (2022), activation size per coordinate in every layer.

On the first 256 probe examples it records, for every weight layer l (in forward order), `coord_<l>` =
RMS over examples and units of the layer's output (pre-activation) and `coord_delta_<l>` = RMS of its
change since step 0. Under muP these stay O(1) as width grows; under SP with a fixed learning rate the
changes grow with width.
"""

from __future__ import annotations

import torch

from ..models import weight_layers
from ..probes import Probe

POINTS = 256


class CoordCheckProbe(Probe):
    """RMS size of every layer's output, and of its change since initialisation."""

    name = "coord_check"

    def measure(self, ctx):
        layers = [layer for _, layer in weight_layers(ctx.model)]
        outputs: list = [None] * len(layers)
        hooks = [layer.register_forward_hook(_keep(outputs, i)) for i, layer in enumerate(layers)]
        try:
            with torch.no_grad():
                ctx.model(ctx.inputs[:POINTS])
        finally:
            for h in hooks:
                h.remove()
        first = ctx.state.setdefault("coord_check_0", [o.clone() for o in outputs])
        out = {}
        for i, o in enumerate(outputs):
            out[f"coord_{i}"] = o.double().pow(2).mean().sqrt().item()
            out[f"coord_delta_{i}"] = (o.double() - first[i].double()).pow(2).mean().sqrt().item()
        return out, []


def _keep(store: list, i: int):
    def hook(module, inputs, output):
        store[i] = output.detach()

    return hook
