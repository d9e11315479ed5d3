"""Hessian spectra of any ``nn.Module`` through Hessian-vector products (HVPs).

Everything here sees the Hessian only through ``v -> H v`` (double backprop that
reuses one ``create_graph=True`` gradient), so nothing of size n_params x n_params
is ever formed -- except :func:`full_hessian`, which exists for tests on tiny models.

Conventions shared by every function:

* ``loss_fn(outputs, targets)`` must return a 0-d tensor; ``inputs`` is a tensor
  (or a tuple/list of tensors passed as ``model(*inputs)``).
* The flattened parameter vector is the concatenation of the selected trainable
  parameters in ``model.named_parameters()`` order, whatever order ``params=``
  names them in. ``params`` may be parameter tensors, parameter names
  (``"layers.0.weight"``) or module names (``"layers.0"`` = all its parameters).
* The model is used in whatever mode it is in (``train()``/``eval()``); its buffers
  (BatchNorm running statistics) are restored after the forward pass, and no
  ``.grad`` is written (everything goes through ``torch.autograd.grad``).
* Randomness comes only from the ``generator`` argument (a ``torch.Generator``);
  without one a fresh generator seeded with 0 is used, never the global RNG.
* Results leave as numpy (values) or torch tensors in the parameters' dtype and
  device (eigenvectors, which are meant to be fed back as warm starts).
* Bad arguments raise ``ValueError`` naming the argument; a non-finite loss or
  Hessian-vector product raises ``FloatingPointError``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    import pandas as pd

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ParamSelection = Sequence[torch.Tensor] | Sequence[str] | None

MODES = ("algebraic", "magnitude", "smallest")
DEFAULT_SEED = 0
DEFAULT_MAX_ITER = 500
BREAKDOWN_RTOL = 1e-10
DGKS_ETA = 1 / math.sqrt(2)  # reorthogonalise again when one Gram-Schmidt pass removed more than this share

__all__ = [
    "MODES",
    "EigResult",
    "HVPOperator",
    "DenseOperator",
    "hvp_operator",
    "lanczos",
    "top_eigenvalues",
    "slq_nodes",
    "density_from_nodes",
    "spectral_density",
    "hessian_trace",
    "layer_top_eigenvalues",
    "adam_preconditioner",
    "preconditioned_sharpness",
    "full_hessian",
]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EigResult:
    """Eigenvalues (descending), eigenvectors (k x n), HVPs spent, whether tol was met, error and gap estimates.

    Pass the whole result as the next call's ``v0`` to warm-start from its vectors and gap.
    """

    values: np.ndarray
    vectors: torch.Tensor
    n_hvp: int
    converged: bool
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))  # estimated relative error per value
    # estimated distance from each value to the nearest other eigenvalue (nan: unknown); lets a
    # later warm start from this result stop after one product (see :func:`lanczos`)
    gaps: np.ndarray = field(default_factory=lambda: np.zeros(0))


# --------------------------------------------------------------------------- validation helpers


def _as_tuple(inputs: object) -> tuple:
    """The positional arguments passed to the model."""
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _check_batch(inputs: object, targets: object, device: torch.device) -> None:
    """Raise ValueError naming inputs/targets when the batch is empty or on another device than the model."""
    tensors = [t for t in _as_tuple(inputs) if isinstance(t, torch.Tensor)]
    if not tensors:
        raise ValueError("inputs must be a tensor or a tuple/list of tensors (got no tensor)")
    for t in tensors:
        if t.numel() == 0:
            raise ValueError(f"inputs must be a non-empty batch (got shape {tuple(t.shape)})")
        if t.device != device:
            raise ValueError(f"inputs are on {t.device} but the model parameters are on {device}; "
                             "move them to one device")
    if isinstance(targets, torch.Tensor):
        if targets.numel() == 0:
            raise ValueError(f"targets must be a non-empty batch (got shape {tuple(targets.shape)})")
        if targets.device != device:
            raise ValueError(f"targets are on {targets.device} but the model parameters are on {device}; "
                             "move them to one device")


def _check_k(k: int, n: int) -> None:
    """Raise ValueError naming k unless 1 <= k <= n."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer between 1 and the number of parameters {n} (got {k!r})")


def _check_positive(name: str, value: float) -> None:
    """Raise ValueError naming the argument unless value is a finite positive number."""
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number (got {value!r})")


def _check_count(name: str, value: int, minimum: int = 1) -> None:
    """Raise ValueError naming the argument unless value is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")


def _check_mode(mode: str) -> None:
    """Raise ValueError naming mode unless it is one of MODES."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")


def _make_generator(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or a fresh CPU generator seeded with DEFAULT_SEED."""
    if generator is None:
        return torch.Generator().manual_seed(DEFAULT_SEED)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None (got {type(generator).__name__})")
    return generator


# --------------------------------------------------------------------------- parameter selection


def _select_params(model: nn.Module, params: ParamSelection) -> tuple[list[str], list[torch.Tensor]]:
    """Names and tensors of the selected trainable parameters, in model.named_parameters() order."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    if params is None:
        return [n for n, _ in named], [p for _, p in named]
    if isinstance(params, (str, torch.Tensor)) or not isinstance(params, Sequence) or len(params) == 0:
        raise ValueError("params must be None or a non-empty list of parameters, parameter names or module names")
    wanted: set[int] = set()
    by_name = dict(model.named_parameters())
    modules = dict(model.named_modules())
    for item in params:
        if isinstance(item, torch.Tensor):
            if not any(item is p for _, p in named):
                raise ValueError("params contains a tensor that is not a trainable parameter of model")
            wanted.add(id(item))
        elif isinstance(item, str):
            if item in by_name:
                if not by_name[item].requires_grad:
                    raise ValueError(f"params names {item!r}, which does not require grad")
                wanted.add(id(by_name[item]))
            elif item in modules:
                found = [id(p) for p in modules[item].parameters() if p.requires_grad]
                if not found:
                    raise ValueError(f"params names module {item!r}, which has no trainable parameters")
                wanted.update(found)
            else:
                sample = ", ".join(list(by_name)[:6])
                raise ValueError(f"params names {item!r}, which is neither a parameter nor a module of model "
                                 f"(e.g. {sample})")
        else:
            raise ValueError(f"params must contain tensors or names (got {type(item).__name__})")
    chosen = [(n, p) for n, p in named if id(p) in wanted]
    return [n for n, _ in chosen], [p for _, p in chosen]


def _model_device(params: list[torch.Tensor]) -> torch.device:
    """The one device all selected parameters live on."""
    devices = {p.device for p in params}
    if len(devices) > 1:
        raise ValueError(f"model parameters must be on one device (got {sorted(map(str, devices))})")
    return params[0].device


@contextlib.contextmanager
def _preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Run the block on copies of the model's buffers (e.g. BatchNorm running stats); the originals stay put."""
    saved = []
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is not None:
                saved.append((module, name, buf))
                module._buffers[name] = buf.detach().clone()
    try:
        yield
    finally:
        for module, name, buf in saved:
            module._buffers[name] = buf


def _loss(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object) -> torch.Tensor:
    """Forward pass and loss, checked to be a finite scalar; buffers are left unchanged."""
    with _preserved_buffers(model), torch.enable_grad():
        loss = loss_fn(model(*_as_tuple(inputs)), targets)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar (0-d) tensor (got {shape}); reduce it with mean or sum")
    if not torch.isfinite(loss.detach()).item():
        raise FloatingPointError(f"loss_fn returned a non-finite loss ({loss.item()}); the Hessian is undefined")
    return loss


# --------------------------------------------------------------------------- operators


class HVPOperator:
    """Callable v -> H v (or P^{-1/2} H P^{-1/2} v) over a flattened group of parameters."""

    def __init__(self, names: list[str], params: list[torch.Tensor], grads: Sequence[torch.Tensor | None],
                 scale: torch.Tensor | None = None) -> None:
        """Wrap the create_graph=True gradients of params; scale is P^{-1/2} (or None)."""
        self.names = list(names)
        self.params = list(params)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.n = sum(p.numel() for p in self.params)
        self.offsets = np.cumsum([0] + [p.numel() for p in self.params]).tolist()
        self.n_calls = 0
        flat = [torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1) for p, g in zip(self.params, grads)]
        self._flat_grad = torch.cat(flat)
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
        if not self._flat_grad.requires_grad:  # loss is (at most) linear in these parameters
            return torch.zeros(self.n, dtype=self.dtype, device=self.device)
        with torch.enable_grad():
            parts = torch.autograd.grad(self._flat_grad @ v, self.params, retain_graph=True,
                                        allow_unused=True, materialize_grads=True)
        hv = torch.cat([p.reshape(-1) for p in parts]).detach()
        if self._scale is not None:
            hv = hv * self._scale
        return hv

    def gradient(self) -> torch.Tensor:
        """The loss gradient in the operator's coordinates (P^{-1/2} g when preconditioned), detached."""
        g = self._flat_grad.detach()
        return g * self._scale if self._scale is not None else g

    def restricted(self, names: Sequence[str]) -> HVPOperator:
        """The operator of the diagonal block of H belonging to a subset of this operator's parameter names."""
        keep = set(names)
        idx = [i for i, n in enumerate(self.names) if n in keep]
        if not idx or self._scale is not None:
            raise ValueError("names must select parameters of an unpreconditioned operator")
        grads = [self._flat_grad[self.offsets[i]:self.offsets[i + 1]] for i in idx]
        return HVPOperator([self.names[i] for i in idx], [self.params[i] for i in idx], grads)

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


def _precond_scale(precond: torch.Tensor | None, n: int, dtype: torch.dtype,
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


def _operator_from_loss(names: list[str], params: list[torch.Tensor], loss: torch.Tensor,
                        precond: torch.Tensor | None = None) -> HVPOperator:
    """Build the create_graph=True gradient once and wrap it as an HVPOperator."""
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    n = sum(p.numel() for p in params)
    scale = _precond_scale(precond, n, params[0].dtype, params[0].device)
    return HVPOperator(names, params, grads, scale)


def hvp_operator(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                 params: ParamSelection = None, precond: torch.Tensor | None = None) -> HVPOperator:
    """Operator v -> H v over the selected parameters (v -> P^{-1/2} H P^{-1/2} v with a diagonal precond P).

    The gradient is built once with ``create_graph=True``; each call costs one
    ``torch.autograd.grad(g @ v, params, retain_graph=True)``. The operator holds the
    graph, so drop it when done. ``precond`` is the diagonal of P (length ``op.n``);
    the symmetric form has the same eigenvalues as P^{-1} H.
    """
    names, plist = _select_params(model, params)
    device = _model_device(plist)
    _check_batch(inputs, targets, device)
    loss = _loss(model, loss_fn, inputs, targets)
    return _operator_from_loss(names, plist, loss, precond)


# --------------------------------------------------------------------------- Lanczos machinery


def _basis_device(device: torch.device) -> torch.device:
    """Where the float64 Krylov basis lives (MPS has no float64, so the CPU there)."""
    return torch.device("cpu") if device.type == "mps" else device


def _random_vector(n: int, generator: torch.Generator, device: torch.device, rademacher: bool = False) -> torch.Tensor:
    """A float64 Gaussian (or Rademacher) vector drawn from generator, moved to device."""
    if rademacher:
        v = torch.randint(0, 2, (n,), generator=generator, device=generator.device).to(torch.float64) * 2 - 1
    else:
        v = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    return v.to(device)


def small_eigh(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition (ascending) of a small symmetric projected matrix, through torch's LAPACK.

    Not numpy's: with numpy's multi-threaded OpenBLAS, an eigh of a 30 x 30 matrix right
    after torch work took 20-40 ms on a busy 2-core machine (its threads contend with
    torch's OpenMP pool), as long as a Hessian-vector product; torch's takes ~0.3 ms.
    """
    theta, Y = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(T, dtype=np.float64)))
    return theta.numpy(), Y.numpy()


class _Krylov:
    """Orthonormal basis Q, projection T and coupling b with A Q_m = Q_m T + q_m b^T (full reorthogonalisation)."""

    def __init__(self, n: int, capacity: int, q0: torch.Tensor) -> None:
        """Start from the unit vector q0 with room for capacity vectors plus the pending one."""
        self.n = n
        self.Q = torch.zeros(capacity + 1, n, dtype=torch.float64, device=q0.device)
        self.Q[0] = q0
        self.m = 0
        self.T = np.zeros((0, 0))
        self.b = np.zeros(0)
        self.exhausted = False  # the basis spans an invariant subspace and no new direction exists

    @property
    def pending(self) -> torch.Tensor:
        """The next vector to multiply by A."""
        return self.Q[self.m]

    def _orthogonalise(self, r: torch.Tensor, upto: int) -> tuple[torch.Tensor, torch.Tensor]:
        """r minus its projection on Q[:upto] and the coefficients removed (classical Gram-Schmidt with DGKS).

        A second pass is made only when the first removed most of r (norm dropped below
        DGKS_ETA of its original value), the criterion of Daniel, Gragg, Kaufman & Stewart
        (1976): otherwise one pass already leaves r orthogonal to working precision.
        """
        Qa = self.Q[:upto]
        norm0 = float(r.norm())
        h = Qa @ r
        r = r - Qa.T @ h
        if float(r.norm()) < DGKS_ETA * norm0:
            h2 = Qa @ r
            r -= Qa.T @ h2
            h += h2
        return r, h

    def expand(self, w: torch.Tensor) -> float:
        """Add the pending vector with image w = A q_m; return the new coupling beta (0 at breakdown)."""
        m = self.m
        # the Lanczos recurrence first (O(n): the pending vector and the few vectors it couples to), then
        # one full Gram-Schmidt pass removes what rounding left; a second only on the DGKS criterion
        q = self.Q[m]
        alpha = float(q @ w)
        r = w - alpha * q
        for j in np.flatnonzero(self.b):
            r.sub_(self.Q[j], alpha=float(self.b[j]))
        r, h = self._orthogonalise(r, m + 1)
        alpha += float(h[m])
        T = np.zeros((m + 1, m + 1))
        T[:m, :m] = self.T
        T[:m, m] = self.b
        T[m, :m] = self.b
        T[m, m] = alpha
        self.T = T
        self.m = m + 1
        beta = float(r.norm())
        if beta > BREAKDOWN_RTOL * float(w.norm()) and self.m < self.n:
            self.Q[self.m] = r / beta
            self.b = np.zeros(self.m)
            self.b[-1] = beta
            return beta
        self.b = np.zeros(self.m)
        self.exhausted = self.m >= self.n
        return 0.0

    def add_random_direction(self, generator: torch.Generator) -> bool:
        """After a breakdown, continue from a random vector orthogonal to the basis; False if none is left."""
        if self.m >= self.n:
            self.exhausted = True
            return False
        for _ in range(3):
            r, _ = self._orthogonalise(_random_vector(self.n, generator, self.Q.device), self.m)
            norm = float(r.norm())
            if norm > 1e-8:
                self.Q[self.m] = r / norm
                return True
        self.exhausted = True
        return False

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), coefficient vectors (m x m) and residual norms."""
        theta, Y = small_eigh(self.T)
        return theta, Y, np.abs(self.b @ Y)

    def restart(self, keep: np.ndarray, Y: np.ndarray, theta: np.ndarray) -> None:
        """Thick restart: keep the Ritz vectors Y[:, keep] and the pending vector."""
        p = len(keep)
        Yk = torch.from_numpy(np.ascontiguousarray(Y[:, keep].T)).to(self.Q.device)
        pending = self.Q[self.m].clone()
        self.Q[:p] = Yk @ self.Q[: self.m]
        self.Q[p] = pending
        self.b = self.b @ Y[:, keep]
        self.T = np.diag(theta[keep])
        self.m = p

    def vectors(self, Y: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """Ritz vectors Q_m Y[:, idx] as rows (float64)."""
        Yi = torch.from_numpy(np.ascontiguousarray(Y[:, idx].T)).to(self.Q.device)
        return Yi @ self.Q[: self.m]


def _priority(theta: np.ndarray, mode: str) -> np.ndarray:
    """Indices of theta from most to least wanted under mode."""
    if mode == "algebraic":
        return np.argsort(-theta, kind="stable")
    if mode == "smallest":
        return np.argsort(theta, kind="stable")
    return np.argsort(-np.abs(theta), kind="stable")


def _error_bounds(theta: np.ndarray, res: np.ndarray, idx: np.ndarray, use_gap: bool = True,
                  prior_gap: float | None = None) -> np.ndarray:
    """Absolute error bounds min(res, res^2/gap) of theta[idx] (res where the refinement does not apply).

    gap is the distance to the nearest other Ritz value (when use_gap); when there is
    none, a gap estimate carried over from a previous measurement (prior_gap) stands in,
    less res (Kato-Temple's theta - lambda_2 with |lambda_1 - theta| <= res). The
    refinement is applied only where gap > res.
    """
    out = np.empty(len(idx))
    for j, i in enumerate(idx):
        others = np.delete(theta, i)
        gap = float(np.min(np.abs(others - theta[i]))) if use_gap and others.size else math.inf
        if prior_gap is not None and math.isfinite(prior_gap) and not math.isfinite(gap):
            gap = min(gap, prior_gap) - res[i]
        out[j] = min(res[i], res[i] ** 2 / gap) if math.isfinite(gap) and gap > res[i] else res[i]
    return out


def _relative_errors(theta: np.ndarray, res: np.ndarray, idx: np.ndarray, floor: float,
                     use_gap: bool = True, prior_gap: float | None = None) -> np.ndarray:
    """Residual-based relative error estimates `_error_bounds` / max(|theta|, floor) for theta[idx]."""
    bounds = _error_bounds(theta, res, idx, use_gap, prior_gap)
    out = np.empty(len(idx))
    for j, i in enumerate(idx):
        denom = max(abs(theta[i]), floor, np.finfo(np.float64).tiny)
        out[j] = 0.0 if res[i] == 0 else bounds[j] / denom
    return out


def _gap_estimates(theta: np.ndarray, res: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Distance from theta[i] to the nearest other eigenvalue, estimated as min_j |theta_i - theta_j| - res_j.

    Each other Ritz value theta_j has an eigenvalue within res_j of it, so subtracting
    res_j guards against unconverged neighbours (which sit below the eigenvalue they
    approach); nan where that leaves nothing positive.
    """
    out = np.full(len(idx), np.nan)
    # each Ritz value's own error estimate min(r, r^2/gap), as the stopping rule uses for the wanted ones
    err = _error_bounds(theta, res, np.arange(len(theta)))
    for j, i in enumerate(idx):
        mask = np.arange(len(theta)) != i
        if mask.any():
            gap = float(np.min(np.abs(theta[mask] - theta[i]) - err[mask]))
            out[j] = gap if gap > 0 else np.nan
    return out


def _warm_prior(v0: object, k: int) -> tuple[torch.Tensor | None, float | None, float | None]:
    """(vectors, previous value, previous gap) from v0; value and gap only for a k = 1 EigResult with a known gap."""
    if not isinstance(v0, EigResult):
        return v0, None, None
    if k != 1 or len(v0.values) != 1 or len(v0.gaps) != 1 or not np.isfinite(v0.gaps[0]) or v0.gaps[0] <= 0:
        return v0.vectors, None, None
    return v0.vectors, float(v0.values[0]), float(v0.gaps[0])


def _start_vector(v0: torch.Tensor | None, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Unit float64 start vector: the (sum of the normalised rows of the) warm start, else random."""
    if v0 is None:
        v = _random_vector(n, generator, device)
        return v / v.norm()
    if not isinstance(v0, torch.Tensor) or v0.ndim not in (1, 2) or v0.shape[-1] != n or v0.numel() == 0:
        shape = tuple(v0.shape) if isinstance(v0, torch.Tensor) else type(v0).__name__
        raise ValueError(f"v0 must be a 1-D tensor of length {n} or a (r, {n}) block (got {shape})")
    rows = v0.detach().to(device=device, dtype=torch.float64).reshape(-1, n)
    if not bool(torch.isfinite(rows).all()):
        raise ValueError("v0 must be finite")
    norms = rows.norm(dim=1)
    rows = rows[norms > 0] / norms[norms > 0, None]
    if rows.shape[0] == 0:
        raise ValueError("v0 must not be zero")
    v = rows.sum(dim=0)
    if float(v.norm()) < 1e-8:
        v = rows[0]
    return v / v.norm()


def lanczos(operator: Callable[[torch.Tensor], torch.Tensor], k: int = 1, tol: float = 1e-4,
            v0: torch.Tensor | EigResult | None = None, mode: str = "algebraic", max_iter: int | None = None,
            max_basis: int | None = None, generator: torch.Generator | None = None) -> EigResult:
    """k extreme eigenpairs of a symmetric operator (attributes n, dtype, device) by thick-restart Lanczos.

    Full reorthogonalisation against a float64 Krylov basis (the products themselves
    run in the operator's dtype): the three-term recurrence, then one classical
    Gram-Schmidt pass over the basis, and a second only if the first removed more than
    1 - 1/sqrt(2) of the vector (DGKS). After every product the Ritz pairs of the projected
    matrix are checked: the relative error estimate of Ritz value theta_i with residual
    norm r_i is ``min(r_i, r_i**2 / gap_i) / max(|theta_i|, sqrt(eps) * max|theta|)``,
    with gap_i the distance to the nearest other Ritz value (Kato-Temple; used once
    there are k + 2 Ritz values, before that the plain residual bound r_i); all k
    wanted values below ``tol`` stops the iteration. The estimate is usually
    conservative (true errors 3-15x smaller once the neighbouring Ritz value has
    settled: the residual also holds components on far-away eigenvalues, which
    r^2 / gap charges as if they were at the gap) but can be optimistic by a factor
    of up to ~2.5 while a cluster of eigenvalues near the top is not yet resolved
    (traced on benchmarks/curvature_eig.py's MLP and CNN at true errors of 3e-3 and
    above). When the basis reaches ``max_basis`` vectors it is restarted from the best
    Ritz vectors (Wu & Simon 2000).
    ``max_iter`` caps the number of products (default 500); ``converged`` is False
    if the cap was hit. ``v0`` (a vector or an r x n block, e.g. the previous
    measurement's eigenvectors) starts the Krylov space from the sum of its
    normalised rows, so a slightly perturbed operator converges in a few products.
    ``v0`` may also be the previous :class:`EigResult` itself: for k = 1 its ``gaps``
    estimate (distance from theta_1 to the next eigenvalue) then serves as the gap
    while the Krylov space is too small to estimate one (fewer than k + 2 Ritz values),
    so the first product doubles as a Rayleigh-quotient check of v0 (theta = v0.Hv0,
    r = |Hv0 - theta v0|, Kato-Temple estimate r^2 / (gap - r)) and Lanczos simply goes
    on from v0 if that does not meet tol. The carried gap is shrunk by twice the drift
    |theta - previous value| (the neighbour may have moved towards theta by as much as
    theta moved); a drift of half the gap or more voids it. ``gaps`` of a result are
    min_j |theta_i - theta_j| - e_j over the other Ritz values, each less its own error
    estimate e_j = min(r_j, r_j^2 / gap_j), or the carried gap when smaller.
    Without v0 the start is a seeded random unit vector. (Mixing in the loss gradient,
    which lies mostly in the top eigenspace, halved the products on an MLP but
    made a CNN converge to lambda_2 when the gradient was orthogonal to u_1, so it is
    not done: a random start gives every eigenvector the same expected weight.)
    Like any Krylov method it can miss an eigenvalue whose eigenvector has a tiny
    component in the start vector; a loose tol makes that likelier.
    Single-vector Lanczos sees one copy of an exactly repeated eigenvalue at a time
    (further copies only through restarts after a breakdown).
    Memory: (max_basis + 1) * n float64 numbers (default max_basis = max(2k + 10, 30)).
    """
    n = int(operator.n)
    _check_k(k, n)
    _check_positive("tol", tol)
    _check_mode(mode)
    max_iter = DEFAULT_MAX_ITER if max_iter is None else max_iter
    _check_count("max_iter", max_iter)
    max_basis = min(n, max(2 * k + 10, 30)) if max_basis is None else max_basis
    _check_count("max_basis", max_basis, minimum=k + 1 if n > k else k)
    max_basis = min(max_basis, n)
    gen = _make_generator(generator)
    bdev = _basis_device(torch.device(operator.device))
    v0, prior_value, prior_gap = _warm_prior(v0, k)
    krylov = _Krylov(n, max_basis, _start_vector(v0, n, gen, bdev))
    floor_rel = math.sqrt(torch.finfo(operator.dtype).eps) if operator.dtype.is_floating_point else 1e-8
    n_hvp, converged = 0, False
    theta = Y = res = errors = idx = gap_now = None
    while True:
        w = operator(krylov.pending.to(device=operator.device, dtype=operator.dtype))
        n_hvp += 1
        w = w.detach().to(device=bdev, dtype=torch.float64)
        if not bool(torch.isfinite(w).all()):
            raise FloatingPointError("a Hessian-vector product is not finite")
        beta = krylov.expand(w)
        theta, Y, res = krylov.ritz()
        if krylov.m >= k:
            order = _priority(theta, mode)
            idx = order[:k]
            floor = floor_rel * float(np.max(np.abs(theta)))
            # the gap refinement needs a few other Ritz values to estimate the gap from (else it is optimistic);
            # a warm start from a previous result has a gap estimate from the start, widened by the drift
            gap_now = None if prior_gap is None else prior_gap - 2 * abs(float(theta[idx[0]]) - prior_value)
            errors = _relative_errors(theta, res, idx, floor, use_gap=krylov.m >= k + 2 or krylov.exhausted,
                                      prior_gap=gap_now)
            converged = bool(np.all(errors <= tol)) or krylov.exhausted
            if converged:
                break
        if n_hvp >= max_iter:
            break
        if beta == 0.0 and not krylov.exhausted and not krylov.add_random_direction(gen):
            converged = krylov.m >= k
            break
        if krylov.exhausted:
            break
        if krylov.m >= max_basis:
            order = _priority(theta, mode)
            n_keep = min(krylov.m - 1, k + max(2, (max_basis - k) // 2))
            krylov.restart(order[:n_keep], Y, theta)
    if idx is None:  # stopped before k Ritz values existed
        order = _priority(theta, mode)
        idx = order[: min(k, len(theta))]
        errors = np.full(len(idx), np.inf)
    gaps = _gap_estimates(theta, res, idx) if krylov.m >= k + 2 or krylov.exhausted else np.full(len(idx), np.nan)
    if gap_now is not None and gap_now > 0:  # carry the previous estimate forward, never widen it
        gaps = np.where(np.isfinite(gaps), np.minimum(gaps, gap_now), gap_now)
    vecs = krylov.vectors(Y, idx)
    desc = np.argsort(-theta[idx], kind="stable")
    return EigResult(
        values=theta[idx][desc].copy(),
        vectors=vecs[torch.from_numpy(desc.copy()).to(vecs.device)].to(device=operator.device, dtype=operator.dtype),
        n_hvp=n_hvp,
        converged=converged,
        errors=np.asarray(errors)[desc],
        gaps=gaps[desc],
    )


def top_eigenvalues(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, k: int = 1,
                    tol: float = 1e-4, v0: torch.Tensor | EigResult | None = None, mode: str = "algebraic",
                    max_iter: int | None = None, params: ParamSelection = None,
                    precond: torch.Tensor | None = None, generator: torch.Generator | None = None,
                    max_basis: int | None = None) -> EigResult:
    """Top-k Hessian eigenpairs by Lanczos over HVPs (see :func:`lanczos` for the stopping rule).

    ``mode``: "algebraic" (largest lambda), "magnitude" (largest |lambda|, so negative
    ones show) or "smallest" (most negative). ``values`` are always sorted descending.
    ``v0`` warm-starts from previous eigenvectors (1-D or k x n) or from the previous
    EigResult (which also carries a gap estimate; see :func:`lanczos`). ``params`` restricts
    to a parameter group (the diagonal block of H); ``precond`` gives P^{-1}H's spectrum
    (the vectors are then eigenvectors of P^{-1/2} H P^{-1/2}). Cost: one forward and
    backward with create_graph, then ``n_hvp`` products, each about 1.8 training steps.
    """
    _check_mode(mode)
    _check_positive("tol", tol)
    names, plist = _select_params(model, params)
    n = sum(p.numel() for p in plist)
    _check_k(k, n)
    if v0 is not None:
        # validate before any forward pass
        _start_vector(_warm_prior(v0, k)[0], n, torch.Generator(), torch.device("cpu"))
    op = hvp_operator(model, loss_fn, inputs, targets, params=params, precond=precond)
    return lanczos(op, k=k, tol=tol, v0=v0, mode=mode, max_iter=max_iter, max_basis=max_basis, generator=generator)


# --------------------------------------------------------------------------- spectral density (SLQ)


def _lanczos_quadrature(operator: Callable[[torch.Tensor], torch.Tensor], q0: torch.Tensor,
                        n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes and weights of the spectral measure of operator seen from unit vector q0."""
    n = int(operator.n)
    krylov = _Krylov(n, min(n_iter, n), q0)
    for _ in range(min(n_iter, n)):
        w = operator(krylov.pending.to(device=operator.device, dtype=operator.dtype))
        w = w.detach().to(device=q0.device, dtype=torch.float64)
        if not bool(torch.isfinite(w).all()):
            raise FloatingPointError("a Hessian-vector product is not finite")
        if krylov.expand(w) == 0.0:
            break
    theta, Y = small_eigh(krylov.T)
    return theta, Y[0] ** 2


def slq_nodes(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, n_probes: int = 8,
              n_iter: int = 64, generator: torch.Generator | None = None, params: ParamSelection = None,
              precond: torch.Tensor | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stochastic Lanczos quadrature: one (nodes, weights) pair per Rademacher probe.

    For each probe v (normalised), ``sum(weights * f(nodes))`` is the n_iter-point
    Gauss quadrature of v^T f(H) v, exact for polynomials of degree < 2 * n_iter, so
    ``mean over probes of sum(weights * nodes**m)`` estimates trace(H^m) / n
    (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019). Weights sum to 1.
    """
    _check_count("n_probes", n_probes)
    _check_count("n_iter", n_iter)
    gen = _make_generator(generator)
    op = hvp_operator(model, loss_fn, inputs, targets, params=params, precond=precond)
    bdev = _basis_device(op.device)
    out = []
    for _ in range(n_probes):
        v = _random_vector(op.n, gen, bdev, rademacher=True)
        out.append(_lanczos_quadrature(op, v / v.norm(), n_iter))
    return out


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid-rule integral of y over x."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2)


def density_from_nodes(nodes_weights: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray | None = None,
                       sigma: float | None = None, n_grid: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed spectral density from SLQ nodes and weights, normalised to integrate to 1 over grid.

    Defaults: sigma = (max node - min node) / 200 (or 1e-3 * max|node| if all nodes
    coincide); grid = n_grid points from min node - 5 sigma to max node + 5 sigma.
    """
    if not nodes_weights:
        raise ValueError("nodes_weights must hold at least one (nodes, weights) pair")
    nodes = np.concatenate([np.asarray(nw[0], dtype=np.float64) for nw in nodes_weights])
    weights = np.concatenate([np.asarray(nw[1], dtype=np.float64) for nw in nodes_weights]) / len(nodes_weights)
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        spread = hi - lo
        sigma = spread / 200 if spread > 0 else max(1e-3 * max(abs(lo), abs(hi)), 1e-12)
    _check_positive("sigma", sigma)
    if grid is None:
        _check_count("n_grid", n_grid, minimum=2)
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or not np.all(np.diff(grid) > 0):
        raise ValueError("grid must be a 1-D increasing array of at least 2 points")
    density = np.zeros_like(grid)
    for start in range(0, nodes.size, 256):  # bounded memory: grid x 256 at a time
        z = (grid[:, None] - nodes[None, start:start + 256]) / sigma
        density += np.exp(-0.5 * z * z) @ weights[start:start + 256]
    density /= sigma * math.sqrt(2 * math.pi)
    mass = _trapezoid(density, grid)
    if mass > 0:
        density /= mass
    return grid, density


def spectral_density(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, n_probes: int = 8,
                     n_iter: int = 64, grid: np.ndarray | None = None, sigma: float | None = None,
                     generator: torch.Generator | None = None, params: ParamSelection = None,
                     precond: torch.Tensor | None = None, n_grid: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Hessian eigenvalue density on a grid by stochastic Lanczos quadrature with Gaussian smoothing.

    Costs n_probes * min(n_iter, n) HVPs. See :func:`slq_nodes` and
    :func:`density_from_nodes` (defaults for grid and sigma); the density integrates
    to 1 over the grid (trapezoid rule).
    """
    pairs = slq_nodes(model, loss_fn, inputs, targets, n_probes=n_probes, n_iter=n_iter,
                      generator=generator, params=params, precond=precond)
    return density_from_nodes(pairs, grid=grid, sigma=sigma, n_grid=n_grid)


# --------------------------------------------------------------------------- trace


def hessian_trace(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, n_probes: int = 64,
                  generator: torch.Generator | None = None, params: ParamSelection = None,
                  return_stderr: bool = False) -> float | tuple[float, float]:
    """Hutchinson estimate of trace(H) = E[v^T H v] over Rademacher probes v (one HVP each).

    With ``return_stderr=True`` returns (trace, standard error of the mean over probes).
    The per-probe variance is 2 * sum_{i != j} H_ij^2, large when a few outlier
    eigenvalues dominate the trace.
    """
    _check_count("n_probes", n_probes)
    gen = _make_generator(generator)
    op = hvp_operator(model, loss_fn, inputs, targets, params=params)
    bdev = _basis_device(op.device)
    samples = np.empty(n_probes)
    for i in range(n_probes):
        v = _random_vector(op.n, gen, bdev, rademacher=True)
        hv = op(v.to(device=op.device, dtype=op.dtype)).to(device=bdev, dtype=torch.float64)
        samples[i] = float(v @ hv)
    if not np.all(np.isfinite(samples)):
        raise FloatingPointError("a Hessian-vector product is not finite")
    trace = float(samples.mean())
    if not return_stderr:
        return trace
    stderr = float(samples.std(ddof=1) / math.sqrt(n_probes)) if n_probes > 1 else float("nan")
    return trace, stderr


# --------------------------------------------------------------------------- per-layer spectra


def _module_of(name: str) -> str:
    """Module name of a parameter name ('layers.0.weight' -> 'layers.0'; root parameters -> '(root)')."""
    return name.rsplit(".", 1)[0] if "." in name else "(root)"


def layer_top_eigenvalues(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object, k: int = 1,
                          tol: float = 1e-4, mode: str = "algebraic", max_iter: int | None = None,
                          generator: torch.Generator | None = None) -> pd.DataFrame:
    """Top-k eigenvalues of each module's diagonal Hessian block: DataFrame with columns layer, index, value.

    Parameters are grouped by the module that owns them ("layers.0" gets weight and
    bias). One create_graph gradient is shared by all blocks. A block with fewer than
    k parameters contributes all its eigenvalues. ``index`` 0 is the largest value.
    """
    import pandas as pd

    _check_count("k", k)
    _check_positive("tol", tol)
    _check_mode(mode)
    gen = _make_generator(generator)
    full = hvp_operator(model, loss_fn, inputs, targets)
    groups: dict[str, list[str]] = {}
    for name in full.names:
        groups.setdefault(_module_of(name), []).append(name)
    rows = []
    for layer, names in groups.items():
        op = full.restricted(names)
        res = lanczos(op, k=min(k, op.n), tol=tol, mode=mode, max_iter=max_iter, generator=gen)
        rows += [{"layer": layer, "index": i, "value": float(v)} for i, v in enumerate(res.values)]
    return pd.DataFrame(rows, columns=["layer", "index", "value"])


# --------------------------------------------------------------------------- Adam's preconditioner


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


def _adam_stepped_params(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Names of the model's trainable parameters that the optimizer holds and has taken a step on."""
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        raise ValueError(f"optimizer must be torch.optim.Adam or AdamW (got {type(optimizer).__name__})")
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    names, plist = _select_params(model, None)
    mine = [(n, p) for n, p in zip(names, plist) if id(p) in held]
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
    names = _adam_stepped_params(model, optimizer)
    _, plist = _select_params(model, names)
    precond = adam_preconditioner(optimizer, plist, momentum_correction=momentum_correction)
    res = top_eigenvalues(model, loss_fn, inputs, targets, k=1, tol=tol, v0=v0, max_iter=max_iter,
                          params=names, precond=precond, generator=generator)
    return float(res.values[0])


# --------------------------------------------------------------------------- dense reference (tests only)


def full_hessian(model: nn.Module, loss_fn: LossFn, inputs: object, targets: object,
                 params: ParamSelection = None) -> torch.Tensor:
    """Exact dense Hessian (n x n) by torch.func.hessian -- FOR TESTS ON TINY MODELS ONLY.

    Independent of the HVP code path (forward-over-reverse through functional_call),
    flattened in the same order as :func:`hvp_operator`.
    """
    from torch.func import functional_call, hessian

    names, plist = _select_params(model, params)
    _check_batch(inputs, targets, _model_device(plist))
    shapes = [p.shape for p in plist]
    sizes = [p.numel() for p in plist]
    args = _as_tuple(inputs)

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        """Loss as a function of the flattened selected parameters."""
        chunks = torch.split(flat, sizes)
        values = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes)}
        return loss_fn(functional_call(model, values, args), targets)

    flat0 = torch.cat([p.detach().reshape(-1) for p in plist])
    loss = _loss(model, loss_fn, inputs, targets)  # validates shape and finiteness
    del loss
    with _preserved_buffers(model):
        return hessian(loss_of)(flat0).detach()
