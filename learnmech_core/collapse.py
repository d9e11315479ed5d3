"""Neural collapse metrics NC1-NC4 of penultimate features (Papyan, Han & Donoho 2020).

Class means mu_c are centred by the global mean mu_G, taken as the mean of the class means
(equal to the mean of all features when classes are balanced, and it makes the centred means of
a simplex ETF sum to zero for any class sizes). With M the (C, d) matrix of centred class means:

- NC1 = tr(Sigma_W Sigma_B^+) / C, Sigma_W the within-class covariance (1 / N over all examples),
  Sigma_B = M^T M / C; 0 when every feature sits on its class mean.
- NC2: equinorm = std / mean of the norms ||mu_c - mu_G||; equiangle = std of the off-diagonal
  cosines between centred means; ETF distance = mean |cos + 1 / (C - 1)| over off-diagonal pairs.
- NC3 = || W / ||W||_F - M / ||M||_F ||_F^2 for the classifier weight W (C, d).
- NC4 = 1 - fraction of examples where the classifier's argmax equals the nearest class mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class NCMetrics:
    """Neural collapse metrics; NC3 and NC4 are NaN without a classifier."""

    nc1: float
    nc2_equinorm: float
    nc2_equiangle: float
    nc2_etf_distance: float
    nc3: float
    nc4_ncc_agreement: float  # NC4 = 1 - agreement of classifier argmax and nearest class mean (0 at collapse)
    mean_cosine: float  # mean off-diagonal cosine (-1 / (C - 1) for a simplex ETF)
    n_classes: int
    class_mean_norms: np.ndarray = field(compare=False, repr=False)  # (C,), centred
    cosines: np.ndarray = field(compare=False, repr=False)  # (C, C) between centred class means

    @property
    def ncc_agreement(self) -> float:
        """Fraction of examples where the classifier agrees with the nearest class mean (1 - NC4)."""
        return 1.0 - self.nc4_ncc_agreement


def _array(x: object, name: str) -> np.ndarray:
    """float64 numpy array from a tensor or array-like."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def neural_collapse(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    classifier_weight: np.ndarray | torch.Tensor | None = None,
    classifier_bias: np.ndarray | torch.Tensor | None = None,
) -> NCMetrics:
    """NC1-NC4 of (N, d) features with integer labels; classes are the labels present (at least 2)."""
    h = _array(features, "features")
    if h.ndim != 2 or h.shape[0] == 0:
        raise ValueError(f"features must be 2-D (N, d) with N > 0 (got shape {h.shape})")
    if not np.all(np.isfinite(h)):
        raise ValueError("features must be finite (got NaN or inf)")
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.shape != (h.shape[0],):
        raise ValueError(f"labels must be 1-D with one label per feature row ({h.shape[0]}) (got shape {y.shape})")
    classes, y_index = np.unique(y, return_inverse=True)
    n_classes = classes.size
    if n_classes < 2:
        raise ValueError(f"labels must contain at least 2 classes (got {n_classes})")

    counts = np.bincount(y_index, minlength=n_classes).astype(np.float64)
    means = np.zeros((n_classes, h.shape[1]))
    np.add.at(means, y_index, h)
    means /= counts[:, None]
    global_mean = means.mean(axis=0)
    centred = means - global_mean  # M, (C, d)

    # NC1 = tr(Sigma_W Sigma_B^+) / C with Sigma_B^+ = C * M^+ M^+^T, so NC1 = mean_i |(h_i - mu_yi)^T M^+|^2.
    within = h - means[y_index]
    pinv = np.linalg.pinv(centred, rcond=max(centred.shape) * np.finfo(np.float64).eps * 10)  # (d, C)
    nc1 = float(np.sum((within @ pinv) ** 2) / h.shape[0])
    # class means that coincide (e.g. every ReLU dead: all features 0) leave Sigma_B = 0, whose pseudo-inverse
    # 0 would read as perfect collapse; NC1 and NC3 are undefined there
    scale = float(np.linalg.norm(h)) / np.sqrt(h.shape[0])
    separated = float(np.linalg.norm(centred)) > 1e-12 * max(scale, np.finfo(np.float64).tiny)
    if not separated:
        nc1 = float("nan")

    norms = np.linalg.norm(centred, axis=1)
    nc2_equinorm = float(np.std(norms) / np.mean(norms)) if np.mean(norms) > 0 else float("nan")
    safe = np.where(norms > 0, norms, 1.0)
    cosines = (centred @ centred.T) / np.outer(safe, safe)
    off = cosines[~np.eye(n_classes, dtype=bool)]
    nc2_equiangle = float(np.std(off))
    nc2_etf_distance = float(np.mean(np.abs(off + 1.0 / (n_classes - 1))))

    nc3 = nc4 = float("nan")
    if classifier_weight is not None:
        w = _array(classifier_weight, "classifier_weight")
        if w.shape != (n_classes, h.shape[1]):
            raise ValueError(
                f"classifier_weight must have shape (C, d) = {(n_classes, h.shape[1])} (got {w.shape}); "
                "labels must cover every class the classifier has"
            )
        b = np.zeros(n_classes) if classifier_bias is None else _array(classifier_bias, "classifier_bias")
        if b.shape != (n_classes,):
            raise ValueError(f"classifier_bias must have shape ({n_classes},) (got {b.shape})")
        w_norm = float(np.linalg.norm(w))
        nc3 = (float(np.sum((w / w_norm - centred / np.linalg.norm(centred)) ** 2)) if separated and w_norm > 0
               else float("nan"))
        predicted = np.argmax(h @ w.T + b, axis=1)
        distances = np.sum(h**2, axis=1)[:, None] - 2.0 * h @ means.T + np.sum(means**2, axis=1)[None, :]
        nearest = np.argmin(distances, axis=1)
        nc4 = float(1.0 - np.mean(predicted == nearest))
    elif classifier_bias is not None:
        raise ValueError("classifier_bias needs classifier_weight (got a bias alone)")

    return NCMetrics(
        nc1=nc1,
        nc2_equinorm=nc2_equinorm,
        nc2_equiangle=nc2_equiangle,
        nc2_etf_distance=nc2_etf_distance,
        nc3=nc3,
        nc4_ncc_agreement=nc4,
        mean_cosine=float(np.mean(off)),
        n_classes=int(n_classes),
        class_mean_norms=norms,
        cosines=cosines,
    )


def simplex_etf(n_classes: int, dim: int, scale: float = 1.0) -> np.ndarray:
    """(C, dim) simplex equiangular tight frame: equal norms `scale`, pairwise cosines -1/(C-1), rows sum to 0."""
    if not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2 (got {n_classes!r})")
    if not isinstance(dim, int) or dim < n_classes - 1:
        raise ValueError(f"dim must be an integer >= n_classes - 1 = {n_classes - 1} (got {dim!r})")
    centred = np.eye(n_classes) - 1.0 / n_classes  # rank C - 1, rows sum to zero
    u, s, _ = np.linalg.svd(centred)
    coords = u[:, : n_classes - 1] * s[: n_classes - 1]  # the same Gram matrix in C - 1 dimensions
    etf = np.zeros((n_classes, dim))
    etf[:, : n_classes - 1] = coords
    return etf * (scale / np.linalg.norm(etf, axis=1, keepdims=True))


def _is_linear(module: nn.Module) -> bool:
    """nn.Linear, or learnmech's parametrised PLinear (a 2-D weight applied as x W^T)."""
    from .models import PLinear

    return isinstance(module, (nn.Linear, PLinear))


def classifier_layer(model: nn.Module) -> nn.Module:
    """The last nn.Linear (or PLinear) in model.modules() order (the classifier of a feed-forward model)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    linears = [m for m in model.modules() if _is_linear(m)]
    if not linears:
        raise ValueError("model must contain an nn.Linear layer (got none)")
    return linears[-1]


def penultimate_features(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """Inputs to the last nn.Linear (registration order) during a no-grad forward pass, as an (N, d) array.

    Inputs with more than two dimensions (e.g. a transformer's (B, T, d)) are flattened to rows.
    For models whose classifier is the last registered ``nn.Linear`` (MLPs, CNNs, ResNets built in
    order) these are the penultimate features; the model's train/eval mode is left as it is.
    """
    layer = classifier_layer(model)
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple, _output: torch.Tensor) -> None:
        captured.append(args[0].detach())

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        handle.remove()
    if not captured:
        raise ValueError("model never called its last nn.Linear in forward (no features captured)")
    feats = captured[-1]
    return feats.reshape(-1, feats.shape[-1]).to("cpu").numpy() if feats.ndim != 2 else feats.to("cpu").numpy()
