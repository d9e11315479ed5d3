"""Probe: how far training moves each weight layer and the empirical NTK from their initial values.

Columns `rel_change_<l>` = ||W_l(t) - W_l(0)||_F / ||W_l(0)||_F for every weight layer (layer 0 holds the
hidden features of a two-layer net), `ntk_rel_change` = ||K_t - K_0||_F / ||K_0||_F and `ntk_cos_distance`
= 1 - <K_0, K_t> / (||K_0|| ||K_t||) of the empirical NTK on the first `probes.ntk_points` probe examples.
The relative change is the quantity that scales as width^-1/2 in the lazy (NTK) limit; the cosine
distance is second order in it (it scales as width^-1).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..models import weight_layers
from ..probes import Probe


class LazyRichProbe(Probe):
    """Relative change of every weight layer and of the empirical NTK since initialisation."""

    name = "lazy_rich"

    def measure(self, ctx):
        from ..ntk import kernel_distance

        index = {id(p): i for i, p in enumerate(ctx.model.parameters())}
        out = {}
        with torch.no_grad():
            for i, (_, layer) in enumerate(weight_layers(ctx.model)):
                w0 = ctx.init_params[index[id(layer.weight)]]
                norm0 = torch.linalg.vector_norm(w0).item()
                change = torch.linalg.vector_norm(layer.weight.detach() - w0).item()
                out[f"rel_change_{i}"] = change / norm0 if norm0 > 0 else float("nan")
        kernel = cpu_safe_ntk(ctx.model, ctx.inputs[: ctx.spec.probes.ntk_points])
        first = ctx.state.setdefault("lazy_rich_ntk0", kernel)
        out["ntk_rel_change"] = float(np.linalg.norm(kernel - first) / np.linalg.norm(first))
        out["ntk_cos_distance"] = kernel_distance(first, kernel)
        return out, []


def cpu_safe_ntk(model, inputs) -> np.ndarray:
    """ntk.empirical_ntk, on a CPU copy when the model lives elsewhere (it converts blocks with .numpy())."""
    from ..ntk import empirical_ntk

    if inputs.device.type == "cpu":
        return empirical_ntk(model, inputs)
    return empirical_ntk(copy.deepcopy(model).cpu(), inputs.cpu())
