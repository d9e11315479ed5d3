"""Per-layer Hessian spectra: the top eigenvalues of each module's diagonal block of H."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .checks import check_count, check_mode, check_positive, make_generator
from .eigensolver import lanczos
from .operators import hvp_operator
from .params import LossFn

if TYPE_CHECKING:
    import pandas as pd


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

    check_count("k", k)
    check_positive("tol", tol)
    check_mode(mode)
    gen = make_generator(generator)
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
