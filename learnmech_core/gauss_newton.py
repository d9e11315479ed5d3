"""Curvature over a whole dataset, batch by batch, and the Gauss-Newton / residual split of the Hessian.

For a loss L(theta) = mean_i l(f(x_i; theta), y_i) the Hessian splits as H = G + R with

    G = J^T H_l J                              (generalised Gauss-Newton: J = df/dtheta, H_l = d^2 l / df^2)
    R = sum_i sum_c (dl/df_c)(x_i) d^2 f_c(x_i) / dtheta^2   (the residual: zero where the model is linear)

G is positive semi-definite for convex l (MSE, cross-entropy). Sagun et al. 2018 and Papyan 2019 trace
the C outliers of a C-class cross-entropy Hessian to G; `curvature_split` measures both parts.

Dataset operators follow PyHessian's data-loader mode: the product with the full-dataset matrix is the
sum over batches of each batch's product weighted by its share of the examples, n_b / N. That equals
the full-batch product exactly for a loss that is a mean over examples (every loss of `train.py`).
Each product recomputes the batch's graph (memory of one batch at a time). Products are handed to
`curvature.lanczos`, so eigenvalues carry its stopping rule and error estimates.

Everything here uses `learnmech_core.curvature` only through its public names.

Measured on the Hessian-outlier phenomenon's quick setting (gaussian_mixture in 16-D, 256 examples,
full-batch GD to loss 0.17-0.28, products accumulated over batches of 64): the top 2C eigenvalues of H
and of G agree within 0.2% for the C - 1 outliers and within 1% in the bulk below them (MLP, C=5: H
5.504 4.356 4.197 3.172 | 1.341, G 5.505 4.358 4.199 3.174 | 1.340; ResNet, C=10: H 9.636 ... 4.317 | 1.863,
G 9.641 ... 4.323 | 1.859); R's eigenvalues are +-0.05 (MLP) and +-0.13 (ResNet), 1% of lambda_1; G carries
1.000 of each outlier direction's curvature (v^T G v / lambda). So the outliers are the Gauss-Newton term's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp

from .curvature import EigResult, hvp_operator, lanczos

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KINDS = ("hessian", "gauss_newton", "residual")


def _trainable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    return [n for n, _ in named], [p for _, p in named]


def batches_of(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 0) -> list[tuple]:
    """(inputs, targets) cut into consecutive batches of `batch_size` rows (0: one batch), the last one shorter."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative integer (got {batch_size!r})")
    n = len(inputs)
    if n == 0 or len(targets) != n:
        raise ValueError(f"inputs and targets must hold the same positive number of examples (got {n} and "
                         f"{len(targets)})")
    size = batch_size or n
    return [(inputs[i:i + size], targets[i:i + size]) for i in range(0, n, size)]


class DatasetOperator:
    """v -> A v for A = H, G or R of the loss over a whole dataset given as batches (PyHessian's data-loader mode).

    ``batches`` is a sequence of (inputs, targets); each batch's loss must be a mean over its examples.
    The product is sum_b (n_b / N) A_b v. Attributes n, dtype, device and n_calls make it a
    `curvature.lanczos` operator. The model is not changed (buffers are used from copies).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: Sequence[tuple], kind: str = "hessian"):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
        batches = list(batches)
        if not batches:
            raise ValueError("batches must hold at least one (inputs, targets) pair")
        self.model, self.loss_fn, self.kind = model, loss_fn, kind
        self.names, self.params = _trainable(model)
        self.batches = batches
        sizes = np.array([len(x[0]) if isinstance(x, (tuple, list)) else len(x) for x, _ in batches], dtype=float)
        self.weights = sizes / sizes.sum()
        self.n = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.n_calls = 0
        self._cached = hvp_operator(model, loss_fn, *batches[0]) if len(batches) == 1 and kind == "hessian" else None

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        if not isinstance(v, torch.Tensor) or v.shape != (self.n,):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"v must be a 1-D tensor of length {self.n} (got {shape})")
        v = v.to(dtype=self.dtype, device=self.device)
        self.n_calls += 1
        out = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        for (inputs, targets), w in zip(self.batches, self.weights, strict=True):
            out += float(w) * self._product(inputs, targets, v)
        return out

    def _product(self, inputs, targets, v: torch.Tensor) -> torch.Tensor:
        if self.kind == "gauss_newton":
            return gauss_newton_product(self.model, self.loss_fn, inputs, targets, v)
        hv = self._cached(v) if self._cached is not None else hvp_operator(self.model, self.loss_fn, inputs, targets)(v)
        if self.kind == "residual":
            return hv - gauss_newton_product(self.model, self.loss_fn, inputs, targets, v)
        return hv


def _functional(model: nn.Module, inputs: object):
    """(f(params_dict) -> outputs, params_dict): the model as a function of its trainable parameters."""
    names, params = _trainable(model)
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)

    def f(values: dict) -> torch.Tensor:
        return functional_call(model, {**buffers, **values}, args)

    return f, {n: p.detach() for n, p in zip(names, params, strict=True)}


def gauss_newton_product(model: nn.Module, loss_fn: LossFn, inputs: object, targets: torch.Tensor,
                         v: torch.Tensor) -> torch.Tensor:
    """G v = J^T H_l (J v) on one batch: a forward-mode J v, an output-space HVP, a reverse-mode J^T u."""
    f, primals = _functional(model, inputs)
    sizes = [p.numel() for p in primals.values()]
    pieces = torch.split(v, sizes)
    tangent = {n: t.reshape(p.shape).to(p.dtype) for (n, p), t in zip(primals.items(), pieces, strict=True)}
    with torch.enable_grad():
        outputs, jv = jvp(f, (primals,), (tangent,))
        _, hjv = jvp(grad(lambda o: loss_fn(o, targets)), (outputs.detach(),), (jv,))
        _, pullback = vjp(f, primals)
        (gv,) = pullback(hjv)
    return torch.cat([gv[n].reshape(-1) for n in primals]).detach()


def full_gauss_newton(model: nn.Module, loss_fn: LossFn, inputs: object, targets: torch.Tensor) -> torch.Tensor:
    """Dense G = J^T H_l J (n x n) from the full Jacobian -- FOR TESTS ON TINY MODELS ONLY."""
    from torch.func import hessian, jacrev

    f, primals = _functional(model, inputs)
    jac = jacrev(f)(primals)
    outputs = f(primals).detach()
    rows = outputs.numel()
    j = torch.cat([jac[n].reshape(rows, -1) for n in primals], dim=1)
    h_out = hessian(lambda o: loss_fn(o, targets))(outputs).reshape(rows, rows)
    return (j.T @ h_out @ j).detach()


@dataclass(frozen=True)
class CurvatureSplit:
    """Top eigenvalues of H, G and R over a dataset, and how much of H's top directions G carries."""

    hessian: np.ndarray  # top-k eigenvalues of H, descending
    gauss_newton: np.ndarray  # top-k eigenvalues of G
    residual: np.ndarray  # the k eigenvalues of R largest in magnitude (sorted descending)
    gauss_newton_share: np.ndarray  # v_i^T G v_i / lambda_i for H's top eigenvectors v_i (1: all from G)
    converged: bool
    n_examples: int
    n_batches: int
    n_products: int  # operator products spent (each one pass over the dataset)

    def table(self):
        """One row per rank: rank, hessian, gauss_newton, residual, gauss_newton_share."""
        import pandas as pd

        return pd.DataFrame({"rank": np.arange(1, len(self.hessian) + 1), "hessian": self.hessian,
                             "gauss_newton": self.gauss_newton, "residual": self.residual,
                             "gauss_newton_share": self.gauss_newton_share})


def top_eigenvalues_over(model: nn.Module, loss_fn: LossFn, batches: Sequence[tuple], kind: str = "hessian",
                         k: int = 1, tol: float = 1e-3, mode: str = "algebraic",
                         generator: torch.Generator | None = None) -> EigResult:
    """Top-k eigenpairs of H, G or R over all batches by Lanczos (`curvature.lanczos`)."""
    return lanczos(DatasetOperator(model, loss_fn, batches, kind), k=k, tol=tol, mode=mode, generator=generator)


def curvature_split(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, k: int = 5,
                    batch_size: int = 0, tol: float = 1e-3, generator: torch.Generator | None = None) -> CurvatureSplit:
    """Top-k eigenvalues of the Hessian, its Gauss-Newton part and its residual over (inputs, targets).

    ``batch_size`` > 0 accumulates every product over batches of that size (the result is the same up
    to rounding; memory is one batch's). The Gauss-Newton share of H's i-th top eigenvector v_i is
    v_i^T G v_i / lambda_i; the rest, v_i^T R v_i / lambda_i, is the residual's.
    """
    batches = batches_of(inputs, targets, batch_size)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    h = top_eigenvalues_over(model, loss_fn, batches, "hessian", k, tol, generator=gen)
    g = top_eigenvalues_over(model, loss_fn, batches, "gauss_newton", k, tol, generator=gen)
    r = top_eigenvalues_over(model, loss_fn, batches, "residual", k, tol, mode="magnitude", generator=gen)
    g_op = DatasetOperator(model, loss_fn, batches, "gauss_newton")
    quad = np.array([float(vec @ g_op(vec)) for vec in h.vectors])
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(h.values != 0, quad / h.values, np.nan)
    return CurvatureSplit(hessian=h.values, gauss_newton=g.values, residual=r.values, gauss_newton_share=share,
                          converged=bool(h.converged and g.converged and r.converged), n_examples=len(inputs),
                          n_batches=len(batches), n_products=h.n_hvp + g.n_hvp + r.n_hvp + len(h.vectors))
