"""Probe: strengths u_a = u_a^T W_total v_a of the singular modes of a linear_lowrank target.

Columns `mode_<a>` (a = 0 strongest), `mode_offdiag` (RMS of the off-diagonal entries of U^T W V over
the target's modes: how decoupled the modes are) and, at step 0 of a two-layer net, `mode_u0_<a>`, the
effective initial strength |W1 v_a + W2^T u_a|^2 / 4 that Saxe's closed form starts from.
W_total is read off the model itself (outputs for the identity matrix), so forward multipliers count.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import linear_lowrank_map
from ..models import weight_layers
from ..probes import Probe
from .saxe_dynamics_theory import effective_u0


class SaxeModeProbe(Probe):
    """Mode strengths of a deep linear network on linear_lowrank data."""

    name = "saxe_modes"

    def measure(self, ctx):
        data = ctx.spec.data
        if data.name != "linear_lowrank":
            raise ValueError(f"mode strengths need data.name 'linear_lowrank' (got {data.name!r})")
        if "saxe_svd" not in ctx.state:
            u, _, vt = np.linalg.svd(linear_lowrank_map(data))
            k = len(data.singular_values)
            ctx.state["saxe_svd"] = (u[:, :k], vt[:k].T)
        u, v = ctx.state["saxe_svd"]
        total = _total_map(ctx.model, data.dim, ctx.inputs)
        proj = u.T @ total @ v
        out = {f"mode_{a}": float(proj[a, a]) for a in range(proj.shape[0])}
        off = proj[~np.eye(proj.shape[0], dtype=bool)]
        out["mode_offdiag"] = float(np.sqrt(np.mean(off**2))) if off.size else 0.0
        layers = weight_layers(ctx.model)
        if ctx.step == 0 and len(layers) == 2:
            w1 = _effective_weight(layers[0][1])
            w2 = _effective_weight(layers[1][1])
            for a in range(proj.shape[0]):
                out[f"mode_u0_{a}"] = effective_u0(w1 @ v[:, a], w2.T @ u[:, a])
        return out, []


def _total_map(model, dim: int, like: torch.Tensor) -> np.ndarray:
    """The end-to-end linear map W_total (outputs x inputs) of a bias-free linear model."""
    with torch.no_grad():
        eye = torch.eye(dim, dtype=like.dtype, device=like.device)
        return model(eye).T.double().cpu().numpy()


def _effective_weight(layer) -> np.ndarray:
    """A layer's weight times its forward multiplier, as float64 numpy."""
    return layer.weight.detach().double().cpu().numpy() * float(layer.mult)
