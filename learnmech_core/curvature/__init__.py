"""Hessian spectra of any ``nn.Module`` through Hessian-vector products (HVPs).

Everything here sees the Hessian only through ``v -> H v`` (double backprop that reuses one
``create_graph=True`` gradient), so nothing of size n_params x n_params is ever formed -- except
:func:`full_hessian`, which exists for tests on tiny models. The package, by concern:

* ``operators.py``: :func:`hvp_operator` / :class:`HVPOperator` (the public matvec over a model's
  parameters, optionally preconditioned), :class:`DenseOperator`, :func:`full_hessian`;
  ``params.py``: parameter selection and the checked loss.
* ``krylov.py``: the float64, fully reorthogonalised Krylov basis; ``eigensolver.py``: the eigensolver
  (:func:`lanczos`, :func:`top_eigenvalues`, :class:`EigResult`) and its residual stopping rule.
* ``density.py``: spectral density by stochastic Lanczos quadrature, Hutchinson's trace.
* ``layers.py``: per-layer (diagonal-block) spectra; ``preconditioned.py``: the preconditioned
  Hessian an optimiser follows (Adam's P, per-group learning-rate multipliers).

Conventions shared by every function:

* ``loss_fn(outputs, targets)`` must return a 0-d tensor; ``inputs`` is a tensor (or a tuple/list of
  tensors passed as ``model(*inputs)``); ``params`` selects parameters (tensors, parameter names or
  module names), flattened in ``model.named_parameters()`` order.
* The model is used in whatever mode it is in; its buffers are restored; no ``.grad`` is written.
* Randomness comes only from the ``generator`` argument (a ``torch.Generator``); without one a fresh
  generator seeded with 0 is used, never the global RNG.
* Results leave as numpy (values) or torch tensors in the parameters' dtype and device
  (eigenvectors, which are meant to be fed back as warm starts).
* Bad arguments raise ``ValueError`` naming the argument; a non-finite loss or Hessian-vector
  product raises ``FloatingPointError``.
"""

from .checks import MODES
from .density import density_from_nodes, hessian_trace, slq_nodes, spectral_density
from .eigensolver import DEFAULT_MAX_ITER, EigResult, LanczosSolver, lanczos, top_eigenvalues
from .krylov import small_eigh
from .layers import layer_top_eigenvalues
from .operators import DenseOperator, HVPOperator, full_hessian, hvp_operator
from .preconditioned import (
    ADAM_LIKE,
    SGD_LIKE,
    adam_preconditioner,
    coupled_weight_decay,
    lr_multipliers,
    optimizer_preconditioner,
    optimizer_top_eigenvalues,
    preconditioned_sharpness,
)

__all__ = [
    "MODES",
    "DEFAULT_MAX_ITER",
    "EigResult",
    "LanczosSolver",
    "HVPOperator",
    "DenseOperator",
    "hvp_operator",
    "lanczos",
    "top_eigenvalues",
    "small_eigh",
    "slq_nodes",
    "density_from_nodes",
    "spectral_density",
    "hessian_trace",
    "layer_top_eigenvalues",
    "SGD_LIKE",
    "ADAM_LIKE",
    "adam_preconditioner",
    "lr_multipliers",
    "coupled_weight_decay",
    "optimizer_preconditioner",
    "optimizer_top_eigenvalues",
    "preconditioned_sharpness",
    "full_hessian",
]
