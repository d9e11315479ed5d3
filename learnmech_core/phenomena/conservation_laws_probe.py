"""Probe: squared Frobenius norm of the loss gradient of every weight layer, `gnorm2_<l>` = ||G_l||^2.

Measured at step k on the gradient GD is about to apply (the `.grad` of theta_k; the trainer leaves none
at the final step, so that row has NaN). With the layer norms of `ProbeSpec(layer_norms=True)` it gives
the exact finite-step law of the layer balances b_l = ||W_{l+1}||^2 - ||W_l||^2 of a bias-free
homogeneous net under GD with rate eta and (coupled) weight decay lambda:
b_l(k+1) = (1 - eta lambda)^2 b_l(k) + eta^2 (||G_{l+1}||^2 - ||G_l||^2) (the first-order term vanishes
because <W_l, G_l> is the same for every layer).
"""

from __future__ import annotations

from ..models import weight_layers
from ..probes import Probe


class LayerGradProbe(Probe):
    """||dL/dW_l||^2 of every weight layer (forward order), from the gradient of the current step."""

    name = "layer_grads"
    needs_finite = False

    def measure(self, ctx):
        out = {}
        for i, (_, layer) in enumerate(weight_layers(ctx.model)):
            g = None if ctx.last else layer.weight.grad  # at the last step .grad is the previous step's
            out[f"gnorm2_{i}"] = float(g.detach().double().pow(2).sum()) if g is not None else float("nan")
        return out, []
