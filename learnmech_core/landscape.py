"""Loss-landscape slices along directions in weight space, and linear interpolation between two states.

A direction is a flat tensor over the trainable parameters (``requires_grad``) in
``model.named_parameters()`` order, the same layout as ``parameters_to_vector`` over them and as the
eigenvectors from :mod:`learnmech_core.curvature`. Losses are evaluated with ``functional_call`` under
``no_grad`` on copies of the weights and buffers, so the model itself is never modified (batch-norm
running statistics included). ``inputs`` may be a tensor or a tuple of positional arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ONE_D_RULES = ("zero", "normalize")


def _trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) for trainable parameters in named_parameters() order."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model must have parameters that require grad (got none)")
    return named


def _grid(values: object, name: str) -> np.ndarray:
    """1-D finite float64 array of slice coordinates."""
    a = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers (got shape {a.shape})")
    return a


def _split(direction: object, named: list[tuple[str, torch.Tensor]], name: str) -> dict[str, torch.Tensor]:
    """Flat direction -> {parameter name: tensor shaped, typed and placed like the parameter}."""
    if isinstance(direction, np.ndarray):
        direction = torch.from_numpy(direction)
    if not isinstance(direction, torch.Tensor):
        raise ValueError(f"{name} must be a flat torch.Tensor or numpy array (got {type(direction).__name__})")
    total = sum(p.numel() for _, p in named)
    if direction.ndim != 1 or direction.numel() != total:
        raise ValueError(f"{name} must be a flat vector of length {total} (got shape {tuple(direction.shape)})")
    if not torch.isfinite(direction).all():
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    parts, offset = {}, 0
    for n, p in named:
        parts[n] = direction[offset : offset + p.numel()].reshape(p.shape).to(device=p.device, dtype=p.dtype)
        offset += p.numel()
    return parts


def _origin(model: nn.Module, named: list[tuple[str, torch.Tensor]], origin: object) -> dict[str, torch.Tensor]:
    """Parameters at the slice's origin: the model's own, or the flat trainable vector `origin`."""
    base = {n: p.detach() for n, p in model.named_parameters()}
    if origin is not None:
        base.update(_split(origin, named, "origin"))
    return base


def _loss_at(model: nn.Module, loss_fn: LossFn, inputs: object, targets: torch.Tensor, state: dict) -> float:
    """Loss with the model's tensors replaced by `state` (buffers copied so the model is untouched)."""
    full = {k: v.clone() for k, v in model.named_buffers()}
    full.update(state)
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    with torch.no_grad():
        return float(loss_fn(functional_call(model, full, args), targets))


def loss_at(model: nn.Module, loss_fn: LossFn, inputs: object, targets: torch.Tensor, weights: object) -> float:
    """Loss with the trainable parameters set to the flat vector `weights` (the model is untouched)."""
    named = _trainable(model)
    return _loss_at(model, loss_fn, inputs, targets, _origin(model, named, weights))


def random_direction(
    model: nn.Module, generator: torch.Generator, filter_normalize: bool = True, one_d: str = "zero"
) -> torch.Tensor:
    """Gaussian direction, filter-normalised (Li et al. 2018) or of unit norm, as a flat tensor.

    With ``filter_normalize`` each filter (row along dim 0 of a parameter with two or more
    dimensions: an output neuron of a Linear, an output channel of a conv) is rescaled to the
    norm of the same filter of the weights; 1-D parameters (biases, norm scales) are zeroed
    (``one_d="zero"``, Li et al.'s default) or rescaled as a whole to the parameter's norm
    (``one_d="normalize"``). Without it the whole vector has norm 1. Random numbers come from
    ``generator`` only (on its own device), so the same seed gives the same direction.
    """
    named = _trainable(model)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator (got {type(generator).__name__})")
    if one_d not in ONE_D_RULES:
        raise ValueError(f"one_d must be one of {', '.join(ONE_D_RULES)} (got {one_d!r})")
    pieces = []
    for _, p in named:
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=generator.device).to(p.device)
        w = p.detach()
        if filter_normalize:
            if p.ndim >= 2:
                rows, weight_rows = d.reshape(p.shape[0], -1), w.reshape(p.shape[0], -1)
                scale = weight_rows.norm(dim=1, keepdim=True) / rows.norm(dim=1, keepdim=True).clamp_min(1e-30)
                d = (rows * scale).reshape(p.shape)
            elif one_d == "zero":
                d = torch.zeros_like(d)
            else:
                d = d * (w.norm() / d.norm().clamp_min(1e-30))
        pieces.append(d.reshape(-1))
    flat = torch.cat(pieces)
    return flat if filter_normalize else flat / flat.norm()


def loss_slice_1d(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: object,
    targets: torch.Tensor,
    direction: torch.Tensor,
    alphas: Sequence[float] | np.ndarray,
    origin: torch.Tensor | np.ndarray | None = None,
) -> pd.DataFrame:
    """Loss at theta + alpha * direction for each alpha: DataFrame(alpha, loss).

    theta is the model's weights, or ``origin`` (a flat vector over the trainable parameters).
    """
    named = _trainable(model)
    d = _split(direction, named, "direction")
    grid = _grid(alphas, "alphas")
    base = _origin(model, named, origin)
    losses = [
        _loss_at(model, loss_fn, inputs, targets, {**base, **{n: base[n] + a * d[n] for n in d}}) for a in grid
    ]
    return pd.DataFrame({"alpha": grid, "loss": np.asarray(losses, dtype=np.float64)})


def loss_slice_2d(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: object,
    targets: torch.Tensor,
    d1: torch.Tensor,
    d2: torch.Tensor,
    alphas: Sequence[float] | np.ndarray,
    betas: Sequence[float] | np.ndarray,
    origin: torch.Tensor | np.ndarray | None = None,
) -> pd.DataFrame:
    """Loss at theta + alpha * d1 + beta * d2 on the grid, alpha-major: DataFrame(alpha, beta, loss).

    theta is the model's weights, or ``origin`` (a flat vector over the trainable parameters).
    """
    named = _trainable(model)
    u, v = _split(d1, named, "d1"), _split(d2, named, "d2")
    grid_a, grid_b = _grid(alphas, "alphas"), _grid(betas, "betas")
    base = _origin(model, named, origin)
    rows = []
    for a in grid_a:
        for b in grid_b:
            state = {**base, **{n: base[n] + a * u[n] + b * v[n] for n in u}}
            rows.append((a, b, _loss_at(model, loss_fn, inputs, targets, state)))
    return pd.DataFrame(rows, columns=["alpha", "beta", "loss"]).astype(np.float64)


def interpolate(
    model: nn.Module,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    loss_fn: LossFn,
    inputs: object,
    targets: torch.Tensor,
    ts: Sequence[float] | np.ndarray,
) -> pd.DataFrame:
    """Loss along (1 - t) * state_a + t * state_b: DataFrame(t, loss); t = 0 and 1 are the two states.

    States are ``state_dict``-like mappings holding every parameter (buffers optional). Floating
    entries, buffers included, are interpolated; integer buffers (batch-norm step counts) come
    from ``state_a``; entries a state lacks keep the model's own values.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    grid = _grid(ts, "ts")
    own = dict(model.state_dict(keep_vars=True))
    own.update(dict(model.named_parameters()))
    for label, state in (("state_a", state_a), ("state_b", state_b)):
        if not isinstance(state, Mapping):
            raise ValueError(f"{label} must be a mapping of names to tensors, e.g. model.state_dict()")
        unknown = sorted(set(state) - set(own))
        missing = sorted(n for n, _ in model.named_parameters() if n not in state)
        if unknown or missing:
            raise ValueError(
                f"{label} must hold the model's parameters (unknown: {unknown[:5]}, missing: {missing[:5]})"
            )
        for k, v in state.items():
            if not isinstance(v, torch.Tensor) or v.shape != own[k].shape:
                raise ValueError(f"{label}[{k!r}] must be a tensor of shape {tuple(own[k].shape)}")
    if set(state_a) != set(state_b):
        raise ValueError(f"state_b must have the keys of state_a (differ in {sorted(set(state_a) ^ set(state_b))[:5]})")
    losses = []
    for t in grid:
        state = {}
        for k, a in state_a.items():
            a = a.detach().to(own[k].device)
            b = state_b[k].detach().to(own[k].device)
            state[k] = torch.lerp(a, b.to(a.dtype), float(t)) if a.is_floating_point() else a.clone()
        losses.append(_loss_at(model, loss_fn, inputs, targets, state))
    return pd.DataFrame({"t": grid, "loss": np.asarray(losses, dtype=np.float64)})
