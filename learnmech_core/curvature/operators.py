"""Operators v -> H v over a model's parameters: Hessian-vector products, and a dense matrix for tests.

An *operator* here is any callable ``v -> A v`` on 1-D tensors with attributes ``n`` (length),
``dtype`` and ``device``; :func:`~learnmech_core.curvature.lanczos` and the density tools accept any.
:func:`hvp_operator` is the public way to get one for ``(model, loss_fn, inputs, targets)``: it builds
the gradient once with ``create_graph=True`` and each call costs one double-backward pass
(``torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True)``), about 1.8 training steps. Nothing of size
n x n is formed, except by :func:`full_hessian`, which exists for tests on tiny models. No ``.grad``
is written (everything goes through ``torch.autograd.grad``); a non-finite loss raises
``FloatingPointError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .params import (
    LossFn,
    ParamSelection,
    as_tuple,
    check_batch,
    checked_loss,
    model_device,
    preserved_buffers,
    select_params,
)


class HVPOperator:
    """Callable v -> H v (or P^{-1/2} H P^{-1/2} v) over a flattened group of parameters.

    Build it with :func:`hvp_operator` (or from any scalar loss's ``create_graph=True`` gradients).
    Attributes: ``n`` (length of v), ``dtype`` and ``device`` (the parameters'), ``names`` and
    ``params`` (the selected parameters, in model order; v is their flattened values in that order) and
    ``n_calls`` (products so far). It holds the autograd graph: drop it when done.
    """

    def __init__(self, names: list[str], params: list[torch.Tensor], grads: Sequence[torch.Tensor | None],
                 scale: torch.Tensor | None = None) -> None:
        """Wrap the create_graph=True gradients of params; scale is P^{-1/2} (or None)."""
        self.names = list(names)
        self.params = list(params)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.n = sum(p.numel() for p in self.params)
        self.n_calls = 0
        self._grads = [None if g is None else g.reshape(p.shape) for p, g in zip(self.params, grads, strict=True)]
        # the gradients that depend on the parameters: each product back-propagates v through these alone
        self._active = [i for i, g in enumerate(self._grads) if g is not None and g.requires_grad]
        self._sizes = [p.numel() for p in self.params]
        self._scale = scale

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """H v as a detached 1-D tensor in the parameters' dtype and device."""
        if not isinstance(v, torch.Tensor) or v.shape != (self.n,):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"v must be a 1-D tensor of length {self.n} (got {shape})")
        v = v.to(dtype=self.dtype, device=self.device)
        if self._scale is not None:
            v = v * self._scale
        self.n_calls += 1
        if not self._active:  # loss is (at most) linear in these parameters
            return torch.zeros(self.n, dtype=self.dtype, device=self.device)
        pieces = v.split(self._sizes)
        with torch.enable_grad():  # H v = d(g . v)/dtheta, as the vector-Jacobian product of g with v
            parts = torch.autograd.grad([self._grads[i] for i in self._active], self.params,
                                        grad_outputs=[pieces[i].view_as(self._grads[i]) for i in self._active],
                                        retain_graph=True, allow_unused=True, materialize_grads=True)
        hv = torch.cat([p.reshape(-1) for p in parts]).detach()
        if self._scale is not None:
            hv = hv * self._scale
        return hv

    def restricted(self, names: Sequence[str]) -> HVPOperator:
        """The operator of the diagonal block of H belonging to a subset of this operator's parameter names."""
        keep = set(names)
        idx = [i for i, n in enumerate(self.names) if n in keep]
        if not idx or self._scale is not None:
            raise ValueError("names must select parameters of an unpreconditioned operator")
        return HVPOperator([self.names[i] for i in idx], [self.params[i] for i in idx], [self._grads[i] for i in idx])

    def to_scipy(self):
        """A scipy LinearOperator (float64 numpy in and out) over this operator."""
        from scipy.sparse.linalg import LinearOperator

        def matvec(x: np.ndarray) -> np.ndarray:
            """H x through one HVP."""
            v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
            return self(v).to(device="cpu", dtype=torch.float64).numpy()

        return LinearOperator((self.n, self.n), matvec=matvec, dtype=np.float64)


class DenseOperator:
    """Callable v -> A v for an explicit symmetric matrix (for tests and small reference problems)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        """Wrap a square symmetric tensor."""
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("matrix must be a square 2-D tensor")
        self.matrix = matrix
        self.n = matrix.shape[0]
        self.dtype = matrix.dtype
        self.device = matrix.device
        self.n_calls = 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """A v."""
        if not isinstance(v, torch.Tensor) or v.shape != (self.n,):
            raise ValueError(f"v must be a 1-D tensor of length {self.n}")
        self.n_calls += 1
        return self.matrix @ v.to(dtype=self.dtype, device=self.device)


def precond_scale(precond: torch.Tensor | None, n: int, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor | None:
    """P^{-1/2} from a positive diagonal preconditioner P of length n (or None)."""
    if precond is None:
        return None
    if not isinstance(precond, torch.Tensor) or precond.shape != (n,):
        shape = tuple(precond.shape) if isinstance(precond, torch.Tensor) else type(precond).__name__
        raise ValueError(f"precond must be a 1-D tensor of length {n} (the diagonal of P; got {shape})")
    p = precond.detach().to(dtype=torch.float64)
    if not bool(torch.isfinite(p).all()) or not bool((p > 0).all()):
        raise ValueError("precond must be finite and strictly positive")
    return p.rsqrt().to(dtype=dtype, device=device)


def operator_from_loss(names: list[str], params: list[torch.Tensor], loss: torch.Tensor,
                       precond: torch.Tensor | None = None) -> HVPOperator:
    """Build the create_graph=True gradient once and wrap it as an HVPOperator."""
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    n = sum(p.numel() for p in params)
    scale = precond_scale(precond, n, params[0].dtype, params[0].device)
    return HVPOperator(names, params, grads, scale)


def hvp_operator(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                 params: ParamSelection = None, precond: torch.Tensor | None = None) -> HVPOperator:
    """Operator v -> H v over the selected parameters (v -> P^{-1/2} H P^{-1/2} v with a diagonal precond P).

    The gradient is built once with ``create_graph=True``; each call costs one
    ``torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True)``. The operator holds the
    graph, so drop it when done. ``precond`` is the diagonal of P (length ``op.n``);
    the symmetric form has the same eigenvalues as P^{-1} H.
    """
    names, plist = select_params(model, params)
    device = model_device(plist)
    check_batch(inputs, targets, device)
    loss = checked_loss(model, loss_fn, inputs, targets)
    return operator_from_loss(names, plist, loss, precond)


def full_hessian(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                 params: ParamSelection = None) -> torch.Tensor:
    """Exact dense Hessian (n x n) by torch.func.hessian -- FOR TESTS ON TINY MODELS ONLY.

    Independent of the HVP code path (forward-over-reverse through functional_call),
    flattened in the same order as :func:`hvp_operator`.
    """
    from torch.func import functional_call, hessian

    names, plist = select_params(model, params)
    check_batch(inputs, targets, model_device(plist))
    shapes = [p.shape for p in plist]
    sizes = [p.numel() for p in plist]
    args = as_tuple(inputs)

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        """Loss as a function of the flattened selected parameters."""
        chunks = torch.split(flat, sizes)
        values = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return loss_fn(functional_call(model, values, args), targets)

    flat0 = torch.cat([p.detach().reshape(-1) for p in plist])
    loss = checked_loss(model, loss_fn, inputs, targets)  # validates shape and finiteness
    del loss
    with preserved_buffers(model):
        return hessian(loss_of)(flat0).detach()
