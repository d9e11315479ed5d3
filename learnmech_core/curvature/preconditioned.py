"""Spectra of the preconditioned Hessian an optimiser actually follows, whose stability threshold is 2/eta.

Every optimiser here updates theta -= eta * P^{-1} d with eta the run's (scheduled) learning rate, a
positive diagonal P and d the gradient (SGD), the momentum buffer (heavy ball) or Adam's first moment:

* per-group learning-rate multipliers (a group's ``lr`` is eta * ``lr_mult``, as learnmech's trainer
  sets it; muP away from its base width) put D = diag(lr_mult) into P: SGD P = D^{-1};
* Adam/AdamW: P = (1 - beta1^t) (sqrt(v_t / (1 - beta2^t)) + eps) / D (:func:`adam_preconditioner`);
* weight decay coupled into the gradient (SGD, heavy ball, Adam) adds wd * theta to d, so the map the
  optimiser linearises is H + wd I (the Hessian of the regularised loss). AdamW's decoupled decay
  theta *= 1 - eta * lr_mult * wd is a contraction outside the preconditioned gradient and is left
  out (it moves the threshold by at most eta * lr_mult * wd, under 1e-2 x at the rates used here).

Linearised, GD is stable while eta * lambda_max(P^{-1} (H + wd I)) < 2 (heavy ball: 2 + 2 mu; Adam
with P held fixed: (2 + 2 beta1) / (1 - beta1), Cohen et al. 2022): so the sharpness to compare with
`universality.stability_threshold` is lambda_max(P^{-1/2} (H + wd I) P^{-1/2}), computed here by
Lanczos over Hessian-vector products. For plain SGD (D = I, no decay) it is lambda_max(H).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .eigensolver import EigResult, lanczos
from .operators import hvp_operator
from .params import LossFn, select_params

SGD_LIKE = (torch.optim.SGD,)
ADAM_LIKE = (torch.optim.Adam, torch.optim.AdamW)


def _check_optimizer(optimizer: object) -> None:
    """Raise ValueError naming the optimizer unless it is SGD (with or without momentum), Adam or AdamW."""
    if not isinstance(optimizer, SGD_LIKE + ADAM_LIKE):
        raise ValueError("optimizer must be torch.optim.SGD, Adam or AdamW "
                         f"(got {type(optimizer).__name__})")


def _groups(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> list[dict]:
    """Each parameter's param group (ValueError when the optimizer does not hold one of them)."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    if any(id(p) not in group_of for p in params):
        raise ValueError("optimizer does not hold every selected parameter of the model")
    return [group_of[id(p)] for p in params]


def _per_parameter(values: list[float], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """One number per parameter tensor, spread over its entries (float64, flattened in the given order)."""
    return torch.cat([torch.full((p.numel(),), float(v), dtype=torch.float64, device=p.device)
                      for v, p in zip(values, params, strict=True)])


def lr_multipliers(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Diagonal D of per-parameter learning-rate multipliers: each group's ``lr_mult`` (1 where absent)."""
    return _per_parameter([g.get("lr_mult", 1.0) for g in _groups(optimizer, params)], params)


def coupled_weight_decay(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-parameter weight decay that enters the gradient (SGD, Adam; 0 under AdamW, whose decay is decoupled)."""
    decoupled = isinstance(optimizer, torch.optim.AdamW)
    return _per_parameter([0.0 if decoupled else g.get("weight_decay", 0.0) for g in _groups(optimizer, params)],
                          params)


def adam_preconditioner(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                        momentum_correction: bool = True) -> torch.Tensor:
    """Diagonal of Adam's preconditioner P_t over params (flattened in the given order), lr multipliers included.

    P_t = (1 - beta1^t) * (sqrt(v_t / (1 - beta2^t)) + eps) / lr_mult, elementwise, with v_t the
    state's ``exp_avg_sq`` (``max_exp_avg_sq`` under amsgrad), t its ``step`` and lr_mult the group's
    (1 where absent): then torch's Adam/AdamW step is exactly theta -= eta * P_t^{-1} m_t with m_t the
    raw ``exp_avg`` and eta = group lr / lr_mult (Cohen et al. 2022, as in their code, with per-group
    rates). ``momentum_correction=False`` drops the (1 - beta1^t) factor.
    """
    if not isinstance(optimizer, ADAM_LIKE):
        raise ValueError(f"optimizer must be torch.optim.Adam or AdamW (got {type(optimizer).__name__})")
    parts = []
    for p, group in zip(params, _groups(optimizer, params), strict=True):
        state = optimizer.state.get(p, {})
        key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        if key not in state or "step" not in state or float(state["step"]) < 1:
            raise ValueError("optimizer has no Adam state yet (take at least one optimizer.step() first)")
        beta1, beta2 = group["betas"]
        t = float(state["step"])
        v = state[key].detach().to(torch.float64).reshape(-1)
        p_diag = (v / (1 - beta2**t)).sqrt() + group["eps"]
        if momentum_correction:
            p_diag = p_diag * (1 - beta1**t)
        parts.append(p_diag / group.get("lr_mult", 1.0))
    return torch.cat(parts).to(dtype=params[0].dtype, device=params[0].device)


def optimizer_preconditioner(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                             momentum_correction: bool = True) -> torch.Tensor:
    """Diagonal P of the optimiser's step theta -= eta P^{-1} d: 1 / lr_mult for SGD, :func:`adam_preconditioner`."""
    _check_optimizer(optimizer)
    if isinstance(optimizer, ADAM_LIKE):
        return adam_preconditioner(optimizer, params, momentum_correction=momentum_correction)
    return (1.0 / lr_multipliers(optimizer, params)).to(dtype=params[0].dtype)


class ShiftedOperator:
    """v -> A v + s * v for an operator A and a diagonal shift s (the weight decay in the preconditioned metric)."""

    def __init__(self, operator, shift: torch.Tensor) -> None:
        """Wrap an operator (attributes n, dtype, device) and a shift vector of length n."""
        self.operator, self.n, self.dtype, self.device = operator, operator.n, operator.dtype, operator.device
        self.shift = shift.to(dtype=operator.dtype, device=operator.device)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """A v + s v."""
        return self.operator(v) + self.shift * v.to(dtype=self.dtype, device=self.device)


def _optimised_params(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Names of the model's trainable parameters the optimizer moves (Adam: those it has taken a step on)."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    names, plist = select_params(model, None)
    mine = [(n, p) for n, p in zip(names, plist, strict=True) if id(p) in held]
    if not mine:
        raise ValueError("optimizer holds none of the model's trainable parameters")
    if isinstance(optimizer, SGD_LIKE):
        return [n for n, _ in mine]
    stepped = [n for n, p in mine if "step" in optimizer.state.get(p, {}) and float(optimizer.state[p]["step"]) >= 1]
    if not stepped:
        raise ValueError("optimizer has no Adam state yet (take at least one optimizer.step() first)")
    return stepped


def optimizer_top_eigenvalues(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                              optimizer: torch.optim.Optimizer, k: int = 1, tol: float = 1e-4,
                              v0: torch.Tensor | EigResult | None = None, max_iter: int | None = None,
                              generator: torch.Generator | None = None,
                              momentum_correction: bool = True) -> EigResult:
    """Top-k eigenpairs of P^{-1/2} (H + wd I) P^{-1/2}: the Hessian in the optimiser's own geometry (module doc).

    Over the model's parameters the optimizer moves (for Adam: those it has stepped; the others are
    frozen for it). P is :func:`optimizer_preconditioner`, wd :func:`coupled_weight_decay`. The
    values are those of P^{-1} (H + wd I); the vectors are eigenvectors of the symmetric form.
    Raises ValueError for other optimizers or an Adam without state yet.
    """
    _check_optimizer(optimizer)
    names = _optimised_params(model, optimizer)
    _, plist = select_params(model, names)
    precond = optimizer_preconditioner(optimizer, plist, momentum_correction=momentum_correction)
    op = hvp_operator(model, loss_fn, inputs, targets, params=names, precond=precond)
    decay = coupled_weight_decay(optimizer, plist)
    if bool((decay != 0).any()):
        op = ShiftedOperator(op, decay / precond.to(torch.float64))
    return lanczos(op, k=k, tol=tol, v0=v0, max_iter=max_iter, generator=generator)


def preconditioned_sharpness(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                             optimizer: torch.optim.Optimizer, tol: float = 1e-4,
                             v0: torch.Tensor | EigResult | None = None, max_iter: int | None = None,
                             generator: torch.Generator | None = None, momentum_correction: bool = True) -> float:
    """Largest eigenvalue of P^{-1} (H + wd I) for the optimizer's current P (see :func:`optimizer_top_eigenvalues`).

    For Adam/AdamW, P_t = diag((1 - beta1^t) * (sqrt(v_t / (1 - beta2^t)) + eps) / lr_mult) from each
    parameter's state and group (:func:`adam_preconditioner`); at the adaptive edge of stability it
    hovers near (2 + 2 beta1) / ((1 - beta1) lr), 38 / lr for beta1 = 0.9 (Cohen et al. 2022). For
    SGD, P = 1 / lr_mult, and the threshold is 2 / lr ((2 + 2 momentum) / lr with heavy ball).
    """
    res = optimizer_top_eigenvalues(model, loss_fn, inputs, targets, optimizer, k=1, tol=tol, v0=v0,
                                    max_iter=max_iter, generator=generator, momentum_correction=momentum_correction)
    return float(res.values[0])
