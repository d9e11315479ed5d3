"""Representation similarity: linear CKA (Kornblith et al. 2019) and per-layer features from forward hooks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)


def _features(x: object, name: str) -> np.ndarray:
    """2-D finite float64 array (n, p)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (n_examples, n_features) and non-empty (got shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    return a


def _frobenius_inner(x: np.ndarray, y: np.ndarray) -> float:
    """<X X^T, Y Y^T>_F = ||X^T Y||_F^2, in feature or Gram form, whichever is cheaper."""
    n, p = x.shape
    q = y.shape[1]
    if p * q <= n * (p + q):
        return float(np.sum((x.T @ y) ** 2))
    return float(np.sum((x @ x.T) * (y @ y.T)))


def _hsic_unbiased(x: np.ndarray, y: np.ndarray, kl: float) -> float:
    """Unbiased HSIC (Song et al. 2012) of linear kernels K = X X^T, L = Y Y^T with <K, L>_F = kl, in feature form."""
    n = x.shape[0]
    k_diag, l_diag = np.sum(x * x, axis=1), np.sum(y * y, axis=1)
    k_row = x @ x.sum(axis=0) - k_diag  # (K with zero diagonal) @ 1
    l_row = y @ y.sum(axis=0) - l_diag
    trace_kl = kl - float(k_diag @ l_diag)
    k_sum, l_sum = float(k_row.sum()), float(l_row.sum())
    value = trace_kl + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k_row @ l_row)
    return value / (n * (n - 3))


def linear_cka(
    features_x: np.ndarray | torch.Tensor, features_y: np.ndarray | torch.Tensor, debiased: bool = False
) -> float:
    """Linear CKA of (n, p) and (n, q) features: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T.

    Features are mean-centred first. ``debiased=True`` uses the unbiased HSIC estimator (Song et al.
    2012), as in Kornblith et al.'s reference code and Nguyen et al. 2021; it can be slightly
    negative and needs n > 3 examples. A constant representation has CKA NaN.
    """
    x = _features(features_x, "features_x")
    y = _features(features_y, "features_y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"features_y must have as many rows as features_x ({x.shape[0]}) (got {y.shape[0]})")
    n = x.shape[0]
    if n < (4 if debiased else 2):
        raise ValueError(f"features_x must have at least {4 if debiased else 2} rows (got {n})")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    xy, xx, yy = _frobenius_inner(x, y), _frobenius_inner(x, x), _frobenius_inner(y, y)
    if debiased:
        xy, xx, yy = _hsic_unbiased(x, y, xy), _hsic_unbiased(x, x, xx), _hsic_unbiased(y, y, yy)
    denominator = np.sqrt(xx * yy) if xx > 0 and yy > 0 else 0.0
    return float(xy / denominator) if denominator > 0 else float("nan")


def _default_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf Linear/Conv modules and torch activation modules, in registration order."""
    chosen = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue
        is_activation = type(module).__module__ == "torch.nn.modules.activation" and not isinstance(
            module, nn.MultiheadAttention
        )
        if isinstance(module, _LAYER_TYPES) or is_activation:
            chosen.append((name, module))
    return chosen


def layer_features(
    model: nn.Module, inputs: torch.Tensor, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Outputs of each Linear/Conv/activation module (or the modules `names`) as (n, -1) arrays, in call order.

    One no-grad forward pass with forward hooks (removed afterwards); the model's mode is kept.
    A module called more than once gives keys ``name``, ``name#2``, ...; modules whose output is
    not a tensor are skipped. Without a match by default rules, every leaf module is hooked.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a tensor with a non-empty batch dimension")
    if names is None:
        modules = _default_modules(model) or [
            (n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())
        ]
    else:
        available = dict(model.named_modules())
        missing = [n for n in names if n not in available]
        if missing:
            raise ValueError(f"names has modules the model lacks: {missing} (available: {sorted(available)[:20]})")
        modules = [(n, available[n]) for n in names]
    batch = inputs.shape[0]
    captured: dict[str, np.ndarray] = {}
    calls: dict[str, int] = {}

    def make_hook(name: str):
        def hook(_module: nn.Module, _args: tuple, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                return
            calls[name] = calls.get(name, 0) + 1
            key = name if calls[name] == 1 else f"{name}#{calls[name]}"
            captured[key] = output.detach().reshape(batch, -1).to("cpu").numpy()

        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in modules]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return captured
