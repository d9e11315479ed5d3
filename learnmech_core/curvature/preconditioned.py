"""Spectra of the preconditioned Hessian an optimiser actually follows: Adam's P^{-1} H."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .eigensolver import EigResult, top_eigenvalues
from .params import LossFn, select_params


def adam_preconditioner(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                        momentum_correction: bool = True) -> torch.Tensor:
    """Diagonal of Adam's preconditioner P_t over params (flattened in the given order).

    P_t = (1 - beta1^t) * (sqrt(v_t / (1 - beta2^t)) + eps), elementwise, with v_t the
    state's ``exp_avg_sq`` (``max_exp_avg_sq`` under amsgrad) and t its ``step``: then
    torch's Adam/AdamW update is exactly theta -= lr * P_t^{-1} m_t with m_t the raw
    ``exp_avg`` (Cohen et al. 2022, as in their code). ``momentum_correction=False``
    drops the (1 - beta1^t) factor.
    """
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        raise ValueError(f"optimizer must be torch.optim.Adam or AdamW (got {type(optimizer).__name__})")
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts = []
    for p in params:
        if id(p) not in group_of:
            raise ValueError("optimizer does not hold every trainable parameter of the model")
        group, state = group_of[id(p)], optimizer.state.get(p, {})
        key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        if key not in state or "step" not in state or float(state["step"]) < 1:
            raise ValueError("optimizer has no Adam state yet (take at least one optimizer.step() first)")
        beta1, beta2 = group["betas"]
        t = float(state["step"])
        v = state[key].detach().to(torch.float64).reshape(-1)
        p_diag = (v / (1 - beta2**t)).sqrt() + group["eps"]
        if momentum_correction:
            p_diag = p_diag * (1 - beta1**t)
        parts.append(p_diag)
    return torch.cat(parts).to(dtype=params[0].dtype, device=params[0].device)


def adam_stepped_params(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Names of the model's trainable parameters that the optimizer holds and has taken a step on."""
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        raise ValueError(f"optimizer must be torch.optim.Adam or AdamW (got {type(optimizer).__name__})")
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    names, plist = select_params(model, None)
    mine = [(n, p) for n, p in zip(names, plist, strict=True) if id(p) in held]
    if not mine:
        raise ValueError("optimizer holds none of the model's trainable parameters")
    stepped = [n for n, p in mine if "step" in optimizer.state.get(p, {}) and float(optimizer.state[p]["step"]) >= 1]
    if not stepped:
        raise ValueError("optimizer has no Adam state yet (take at least one optimizer.step() first)")
    return stepped


def preconditioned_sharpness(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                             optimizer: torch.optim.Optimizer, tol: float = 1e-4,
                             v0: torch.Tensor | EigResult | None = None, max_iter: int | None = None,
                             generator: torch.Generator | None = None, momentum_correction: bool = True) -> float:
    """Largest eigenvalue of P_t^{-1} H for Adam/AdamW's current preconditioner P_t (Cohen et al. 2022).

    Exactly: P_t = diag((1 - beta1^t) * (sqrt(v_t / (1 - beta2^t)) + eps)) with, per
    parameter p, v_t = ``optimizer.state[p]['exp_avg_sq']`` (``'max_exp_avg_sq'`` under
    amsgrad), t = ``optimizer.state[p]['step']`` and beta1, beta2, eps from p's param
    group -- so torch's update is theta -= lr * P_t^{-1} exp_avg (see
    :func:`adam_preconditioner`; ``momentum_correction=False`` drops (1 - beta1^t)).
    Computed as the top eigenvalue of the symmetric P^{-1/2} H P^{-1/2} over the
    model's parameters that the optimizer has stepped (others are frozen for it).
    At the adaptive edge of stability it hovers near (2 + 2 beta1) / ((1 - beta1) lr),
    38 / lr for beta1 = 0.9. Raises ValueError if the optimizer is not Adam/AdamW or
    has no Adam state yet.
    """
    names = adam_stepped_params(model, optimizer)
    _, plist = select_params(model, names)
    precond = adam_preconditioner(optimizer, plist, momentum_correction=momentum_correction)
    res = top_eigenvalues(model, loss_fn, inputs, targets, k=1, tol=tol, v0=v0, max_iter=max_iter,
                          params=names, precond=precond, generator=generator)
    return float(res.values[0])
