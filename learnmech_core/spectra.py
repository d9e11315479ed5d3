"""Weight-matrix spectra: empirical spectral densities, power-law tails and Marchenko-Pastur fits.

Conventions (WeightWatcher's, Martin & Mahoney 2021):

- A weight is read as a matrix by :func:`weight_matrix`: ``nn.Linear`` weights as they are,
  convolution kernels ``(out, in, *kernel)`` reshaped to ``(out, in * prod(kernel))``.
  (WeightWatcher instead splits a conv kernel into ``kh * kw`` matrices of shape ``(out, in)``;
  we keep one matrix per layer so a conv layer has one spectrum.)
- The matrix is oriented as ``N x M`` with ``N >= M`` (transposed if needed); its empirical
  spectral density (ESD) is the ``M`` eigenvalues of ``W^T W / N``, i.e. squared singular
  values over ``N`` (computed from the ``M x M`` Gram matrix). The scale does not change the
  power-law exponent.
- The Marchenko-Pastur aspect ratio is ``q = M / N <= 1``; an ``N x M`` matrix of i.i.d.
  entries of variance ``sigma2`` has its ESD on ``[sigma2 (1 - sqrt q)^2, sigma2 (1 + sqrt q)^2]``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

# Power-law fits on fewer eigenvalues than this use the bias-corrected (n - 1) MLE, as WeightWatcher 0.7.7.
SMALL_N = 20
# Eigenvalues at or below this fraction of the largest are numerically zero and are dropped
# before a power-law fit (WeightWatcher drops eigenvalues below an absolute 1e-5).
ZERO_EIGENVALUE_RTOL = 1e-12
# Number of Tracy-Widom scales (Johnstone 2001) above lambda_plus before an eigenvalue is an outlier.
TRACY_WIDOM_TOLERANCE = 3.0


@dataclass(frozen=True)
class PowerLawFit:
    """Continuous power-law fit p(x) ~ x^-alpha of the tail x >= xmin."""

    alpha: float
    xmin: float
    ks_distance: float
    n_tail: int
    sigma: float  # standard error of alpha, (alpha - 1) / sqrt(n_tail)


@dataclass(frozen=True)
class MPFit:
    """Marchenko-Pastur fit of the bulk of an ESD."""

    sigma2: float
    lambda_minus: float
    lambda_plus: float
    ks_distance: float
    n_outliers: int
    aspect_ratio: float
    outlier_threshold: float  # eigenvalues above this count as outliers


def _to_numpy(x: object, name: str) -> np.ndarray:
    """Return x (tensor, array or sequence) as a float64 numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric array-like (got {type(x).__name__})") from err


def _as_matrix(matrix: object, name: str = "matrix") -> torch.Tensor:
    """Return a 2-D float64 CPU tensor, raising ValueError naming `name` otherwise."""
    if isinstance(matrix, np.ndarray):
        matrix = torch.from_numpy(np.asarray(matrix, dtype=np.float64))
    if not isinstance(matrix, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array (got {type(matrix).__name__})")
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (got shape {tuple(matrix.shape)}); use weight_matrix() for conv kernels")
    if matrix.numel() == 0:
        raise ValueError(f"{name} must be non-empty (got shape {tuple(matrix.shape)})")
    matrix = matrix.detach().to("cpu", torch.float64)
    if not torch.isfinite(matrix).all():
        raise ValueError(f"{name} must be finite (got NaN or inf entries)")
    return matrix


def _as_eigenvalues(eigenvalues: object, name: str = "eigenvalues") -> np.ndarray:
    """Return a sorted 1-D float64 array of finite eigenvalues, raising ValueError otherwise."""
    x = _to_numpy(eigenvalues, name)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D (got shape {x.shape})")
    if x.size == 0:
        raise ValueError(f"{name} must be non-empty (got 0 values)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (got NaN or inf)")
    return np.sort(x)


def weight_matrix(param: torch.Tensor) -> torch.Tensor:
    """Weight as a matrix: 2-D as is, conv kernels (out, in, *kernel) reshaped to (out, in*prod(kernel))."""
    if not isinstance(param, torch.Tensor):
        raise ValueError(f"param must be a torch.Tensor (got {type(param).__name__})")
    if param.ndim == 2:
        return param.detach()
    if param.ndim in (3, 4, 5):
        return param.detach().reshape(param.shape[0], -1)
    raise ValueError(f"param must be 2-D (linear) or 3-D to 5-D (conv kernel) (got shape {tuple(param.shape)})")


def weight_esd(matrix: torch.Tensor | np.ndarray) -> np.ndarray:
    """Eigenvalues of W^T W / N for W oriented N x M with N >= M (M values, ascending, float64).

    Computed as the eigenvalues of the M x M Gram matrix in float64 (two to ten times faster than
    an SVD here); absolute accuracy is about 1e-15 of the largest eigenvalue, tiny negatives are
    clipped to 0.
    """
    w = _as_matrix(matrix)
    if w.shape[0] < w.shape[1]:
        w = w.T
    evals = torch.linalg.eigvalsh(w.T @ w).numpy() / w.shape[0]
    return np.clip(np.sort(evals), 0.0, None)


def spectral_norm(matrix: torch.Tensor | np.ndarray) -> float:
    """Largest singular value ||W||_2."""
    w = _as_matrix(matrix)
    return math.sqrt(float(weight_esd(w)[-1]) * max(w.shape))


def stable_rank(matrix: torch.Tensor | np.ndarray) -> float:
    """Stable rank ||W||_F^2 / ||W||_2^2 (between 1 and rank W; 0 for the zero matrix)."""
    evals = weight_esd(matrix)
    return float(np.sum(evals) / evals[-1]) if evals[-1] > 0 else 0.0


def _ks_distances(
    log_x: np.ndarray, starts: np.ndarray, alphas: np.ndarray, columns: np.ndarray | None = None
) -> np.ndarray:
    """KS distance of each tail log_x[i:] (i in `starts`, ascending) to its power law, over all
    points or, with `columns` (ascending positions), over those points only (a lower bound)."""
    total = log_x.size
    columns = np.arange(total) if columns is None else columns
    n_tail = (total - starts).astype(np.float64)
    ks = np.ones(starts.size)
    # Candidates in chunks of about 2M matrix entries; a chunk sees only points from its first candidate on.
    chunk = max(1, int(2_000_000 // max(columns.size, 1)))
    for lo in range(0, starts.size, chunk):
        idx, a, n = starts[lo : lo + chunk], alphas[lo : lo + chunk], n_tail[lo : lo + chunk]
        cols = columns[np.searchsorted(columns, idx[0]) :]
        offset = cols[None, :] - idx[:, None]  # rank within the tail, < 0 below xmin
        log_ratio = np.maximum(log_x[None, cols] - log_x[idx][:, None], 0.0)
        gap = -np.expm1((1.0 - a[:, None]) * log_ratio)  # fitted CDF
        gap -= np.maximum(offset, 0) / n[:, None]  # empirical CDF: fraction of the tail strictly below
        np.abs(gap, out=gap)
        ks[lo : lo + chunk] = gap.max(axis=1, initial=0.0)
    return ks


def _ks_scan(x: np.ndarray, log_x: np.ndarray, starts: np.ndarray, small_n: bool) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and KS distance for tails x[i:] starting at each index in `starts` (ascending, x ascending).

    KS distances are exact for every candidate that could hold the minimum; the others keep a lower
    bound above that minimum: a first pass over every `stride`-th point bounds all candidates from
    below, then candidates are computed in full, most promising bound first in doubling batches,
    until every remaining bound exceeds the best exact distance. The argmin equals a full scan's.
    """
    total = x.size
    suffix = np.concatenate([np.cumsum(log_x[::-1])[::-1], [0.0]])  # suffix[i] = sum(log_x[i:])
    n_tail = (total - starts).astype(np.float64)
    log_sum = suffix[starts] - n_tail * log_x[starts]  # sum(log(x / xmin)) over the tail
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + (n_tail - 1.0 if small_n else n_tail) / log_sum
    alphas = np.where(log_sum > (1e-12 if small_n else 0.0), alphas, np.nan)
    ks = np.ones_like(alphas)
    valid = np.flatnonzero(np.isfinite(alphas) & (alphas > 1.0))
    if valid.size == 0:
        return alphas, ks
    stride = int(math.sqrt(total) / 4)
    if stride < 4:
        ks[valid] = _ks_distances(log_x, starts[valid], alphas[valid])
        return alphas, ks
    columns = np.unique(np.concatenate([np.arange(0, total, stride), [total - 1]]))
    bound = _ks_distances(log_x, starts[valid], alphas[valid], columns)
    exact = np.zeros(valid.size, dtype=bool)
    best, batch = np.inf, 16
    while True:  # branch and bound: resolve the most promising bounds until none can beat the best
        open_ = np.flatnonzero(~exact & (bound <= best))
        if open_.size == 0:
            break
        pick = np.sort(open_[np.argsort(bound[open_], kind="stable")[:batch]])
        bound[pick] = _ks_distances(log_x, starts[valid][pick], alphas[valid][pick])
        exact[pick] = True
        best = min(best, float(bound[pick].min()))
        batch *= 2
    ks[valid] = bound
    return alphas, ks


def power_law_alpha(
    eigenvalues: np.ndarray | torch.Tensor | list[float],
    xmin: float | None = None,
    min_tail: int = 8,
) -> PowerLawFit:
    """Power-law tail exponent by continuous MLE with xmin at minimum KS distance (Clauset et al. 2009).

    Follows WeightWatcher 0.7.7: non-positive and numerically zero eigenvalues (at most 1e-12 of
    the largest) are dropped; every eigenvalue leaving at least ``min_tail`` values in the tail is
    a candidate xmin (no xmax); for each, ``alpha = 1 + n / sum(log(x / xmin))`` and the KS
    distance ``max |F_fit - F_emp|`` with ``F_emp`` the fraction of the tail strictly below each
    point; the smallest distance wins (the first on ties). With fewer than 20 eigenvalues,
    WeightWatcher's small-N fit: the bias-corrected ``alpha = 1 + (n - 1) / sum(log(x / xmin))``,
    xmin still by minimum KS distance. (0.7.7 also defines a tail-size penalty
    ``KS - 0.868 / sqrt(n)``, but its ``WWFit`` constructor re-selects by plain KS afterwards; we
    match what it returns.) WeightWatcher scans tails down to 2 values; ``min_tail=2`` does too.
    A given ``xmin`` fits the tail ``x >= xmin`` by MLE only.
    """
    if not isinstance(min_tail, (int, np.integer)) or isinstance(min_tail, bool) or min_tail < 2:
        raise ValueError(f"min_tail must be an integer >= 2 (got {min_tail!r})")
    x = _as_eigenvalues(eigenvalues)
    if x[-1] <= 0:
        raise ValueError("eigenvalues must contain positive values (got none > 0)")
    x = x[x > x[-1] * ZERO_EIGENVALUE_RTOL]
    log_x = np.log(x)

    if xmin is not None:
        if not (isinstance(xmin, numbers.Real) and math.isfinite(xmin) and xmin > 0):
            raise ValueError(f"xmin must be a positive finite number (got {xmin!r})")
        tail = x[x >= xmin]
        if tail.size < min_tail:
            raise ValueError(f"xmin leaves {tail.size} eigenvalues in the tail, fewer than min_tail={min_tail}")
        log_sum = float(np.sum(np.log(tail / xmin)))
        if log_sum <= 0:
            raise ValueError(f"xmin={xmin!r} leaves a degenerate tail (all values equal to xmin)")
        alpha = 1.0 + tail.size / log_sum
        ranks = np.arange(tail.size) / tail.size
        ks = float(np.max(np.abs(-np.expm1((1.0 - alpha) * np.log(tail / xmin)) - ranks)))
        return PowerLawFit(alpha, float(xmin), ks, int(tail.size), (alpha - 1.0) / math.sqrt(tail.size))

    if x.size < min_tail:
        raise ValueError(f"eigenvalues must contain at least min_tail={min_tail} positive values (got {x.size})")
    small_n = x.size < SMALL_N
    starts = np.arange(0, x.size - min_tail + 1)
    alphas, ks = _ks_scan(x, log_x, starts, small_n)
    n_tail = x.size - starts
    objective = ks.copy()
    objective[~(np.isfinite(alphas) & (alphas > 1.0))] = np.inf
    if not np.isfinite(objective).any():
        raise ValueError("eigenvalues admit no power-law tail (all candidate tails are degenerate)")
    best = int(np.argmin(objective))
    alpha, n = float(alphas[best]), int(n_tail[best])
    return PowerLawFit(alpha, float(x[starts[best]]), float(ks[best]), n, (alpha - 1.0) / math.sqrt(n))


def _check_mp_args(sigma2: float, aspect_ratio: float) -> None:
    """Validate Marchenko-Pastur parameters."""
    if not (isinstance(sigma2, numbers.Real) and math.isfinite(sigma2) and sigma2 > 0):
        raise ValueError(f"sigma2 must be a positive finite number (got {sigma2!r})")
    if not (isinstance(aspect_ratio, numbers.Real) and 0 < aspect_ratio <= 1):
        raise ValueError(f"aspect_ratio must be in (0, 1] (q = M / N with N >= M) (got {aspect_ratio!r})")


def mp_edges(sigma2: float, aspect_ratio: float) -> tuple[float, float]:
    """Bulk edges (lambda_minus, lambda_plus) = sigma2 (1 -/+ sqrt q)^2."""
    _check_mp_args(sigma2, aspect_ratio)
    root = math.sqrt(aspect_ratio)
    return sigma2 * (1.0 - root) ** 2, sigma2 * (1.0 + root) ** 2


def mp_density(x: np.ndarray | float, sigma2: float, aspect_ratio: float) -> np.ndarray:
    """Marchenko-Pastur density sqrt((l+ - x)(x - l-)) / (2 pi sigma2 q x) of the ESD (0 outside the bulk)."""
    lo, hi = mp_edges(sigma2, aspect_ratio)
    x = _to_numpy(x, "x")
    inside = (x > lo) & (x < hi) & (x > 0)
    xs = np.where(inside, x, 0.5 * (lo + hi))
    density = np.sqrt((hi - xs) * (xs - lo)) / (2.0 * math.pi * sigma2 * aspect_ratio * xs)
    return np.where(inside, density, 0.0)


def mp_cdf(x: np.ndarray | float, sigma2: float, aspect_ratio: float) -> np.ndarray:
    """Marchenko-Pastur cumulative distribution of the ESD, in closed form."""
    _check_mp_args(sigma2, aspect_ratio)
    x = _to_numpy(x, "x") / sigma2
    q = float(aspect_ratio)
    a, b = (1.0 - math.sqrt(q)) ** 2, (1.0 + math.sqrt(q)) ** 2
    centre, radius = 0.5 * (a + b), 0.5 * (b - a)
    # x = centre - radius cos(theta); the integral of the density over theta is elementary.
    theta = np.arccos(np.clip((centre - x) / radius, -1.0, 1.0))
    half = 0.5 * theta
    integral = (
        centre * theta
        + radius * np.sin(theta)
        - 2.0 * math.sqrt(a * b) * np.arctan2(math.sqrt(b) * np.sin(half), math.sqrt(a) * np.cos(half))
    )
    return np.clip(integral / (2.0 * math.pi * q), 0.0, 1.0)


def _ks_to_mp(bulk: np.ndarray, sigma2: float, aspect_ratio: float) -> float:
    """Two-sided KS distance between sorted `bulk` and the MP law."""
    cdf = mp_cdf(bulk, sigma2, aspect_ratio)
    n = bulk.size
    ranks = np.arange(n)
    return float(max(np.max((ranks + 1) / n - cdf), np.max(cdf - ranks / n)))


def _fit_sigma2(bulk: np.ndarray, aspect_ratio: float, start: float) -> float:
    """sigma2 minimising the KS distance of `bulk` to MP: log-grid scan around `start`, then golden section."""
    grid = start * np.exp(np.linspace(-1.0, 1.0, 81))
    values = np.array([_ks_to_mp(bulk, s, aspect_ratio) for s in grid])
    i = int(np.argmin(values))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = _ks_to_mp(bulk, math.exp(c), aspect_ratio), _ks_to_mp(bulk, math.exp(d), aspect_ratio)
    for _ in range(40):
        if fc <= fd:
            hi, d, fd = d, c, fc
            c = hi - ratio * (hi - lo)
            fc = _ks_to_mp(bulk, math.exp(c), aspect_ratio)
        else:
            lo, c, fc = c, d, fd
            d = lo + ratio * (hi - lo)
            fd = _ks_to_mp(bulk, math.exp(d), aspect_ratio)
    best = math.exp(c if fc <= fd else d)
    return best if _ks_to_mp(bulk, best, aspect_ratio) <= values[i] else float(grid[i])


def _tracy_widom_scale(n_eigenvalues: int, aspect_ratio: float) -> float:
    """Scale of the largest-eigenvalue fluctuations of W^T W / N in units of sigma2 (Johnstone 2001)."""
    m = n_eigenvalues
    n = m / aspect_ratio
    root_sum = math.sqrt(max(n - 1.0, 1.0)) + math.sqrt(m)
    return root_sum * (1.0 / math.sqrt(max(n - 1.0, 1.0)) + 1.0 / math.sqrt(m)) ** (1.0 / 3.0) / n


def marchenko_pastur_fit(
    eigenvalues: np.ndarray | torch.Tensor | list[float], aspect_ratio: float, max_iter: int = 20
) -> MPFit:
    """Fit the MP law (q = M / N <= 1) to the bulk of an ESD of W^T W / N, excluding outliers iteratively.

    sigma2 starts at the mean eigenvalue (the MP mean), then alternates: fit sigma2 by minimum KS
    distance of the bulk; call outliers the eigenvalues above lambda_plus plus three Tracy-Widom
    scales; refit on the rest; until the outlier set stops changing.
    """
    _check_mp_args(1.0, aspect_ratio)
    x = _as_eigenvalues(eigenvalues)
    if x[-1] <= 0:
        raise ValueError("eigenvalues must contain positive values (got none > 0)")
    if x[0] < -1e-8 * x[-1]:
        raise ValueError(f"eigenvalues must be non-negative (got minimum {x[0]!r})")
    x = np.clip(x, 0.0, None)
    tw = TRACY_WIDOM_TOLERANCE * _tracy_widom_scale(x.size, aspect_ratio)
    n_bulk = x.size
    sigma2 = float(np.mean(x))
    for _ in range(max_iter):
        bulk = x[:n_bulk]
        sigma2 = _fit_sigma2(bulk, aspect_ratio, float(np.mean(bulk)))
        threshold = mp_edges(sigma2, aspect_ratio)[1] + tw * sigma2
        new_n_bulk = max(int(np.searchsorted(x, threshold, side="right")), 1)
        if new_n_bulk == n_bulk:
            break
        n_bulk = new_n_bulk
    lo, hi = mp_edges(sigma2, aspect_ratio)
    threshold = hi + tw * sigma2
    return MPFit(
        sigma2=sigma2,
        lambda_minus=lo,
        lambda_plus=hi,
        ks_distance=_ks_to_mp(x[:n_bulk], sigma2, aspect_ratio),
        n_outliers=int(np.sum(x > threshold)),
        aspect_ratio=float(aspect_ratio),
        outlier_threshold=threshold,
    )


def _matrix_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) for every 2-D weight and every 3-D to 5-D parameter named like a weight."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (got {type(model).__name__})")
    out = []
    for name, param in model.named_parameters():
        if param.ndim == 2 or (param.ndim in (3, 4, 5) and name.rsplit(".", 1)[-1].endswith("weight")):
            out.append((name, param))
    return out


def layer_summaries(model: nn.Module, min_tail: int = 8) -> pd.DataFrame:
    """One row per 2-D or conv weight: shape, N, M, spectral norm, stable rank, power-law and MP fits."""
    rows = []
    for name, param in _matrix_weights(model):
        w = weight_matrix(param).to("cpu", torch.float64)
        n, m = max(w.shape), min(w.shape)
        evals = weight_esd(w)
        top = float(evals[-1]) * n  # squared spectral norm, from the same eigenvalues
        try:
            fit = power_law_alpha(evals, min_tail=min_tail)
            alpha, xmin = fit.alpha, fit.xmin
        except ValueError:
            alpha = xmin = float("nan")
        try:
            mp = marchenko_pastur_fit(evals, m / n)
            mp_row = (mp.sigma2, mp.lambda_plus, mp.n_outliers, mp.ks_distance)
        except ValueError:
            mp_row = (float("nan"), float("nan"), -1, float("nan"))
        rows.append(
            {
                "layer": name,
                "shape": "x".join(str(s) for s in param.shape),
                "n": n,
                "m": m,
                "spectral_norm": math.sqrt(top),
                "stable_rank": float(np.sum(evals)) * n / top if top > 0 else 0.0,
                "alpha": alpha,
                "xmin": xmin,
                "mp_sigma2": mp_row[0],
                "mp_lambda_plus": mp_row[1],
                "n_outliers": mp_row[2],
                "mp_ks": mp_row[3],
            }
        )
    columns = ["layer", "shape", "n", "m", "spectral_norm", "stable_rank", "alpha", "xmin"]
    columns += ["mp_sigma2", "mp_lambda_plus", "n_outliers", "mp_ks"]
    return pd.DataFrame(rows, columns=columns)


def esd_rows(model: nn.Module, step: int) -> pd.DataFrame:
    """Tidy ESD rows (step, kind="weight_esd", layer, index, value) for every 2-D or conv weight."""
    frames = []
    for name, param in _matrix_weights(model):
        evals = weight_esd(weight_matrix(param))
        frames.append(
            pd.DataFrame(
                {
                    "step": np.full(evals.size, int(step), dtype=np.int64),
                    "kind": "weight_esd",
                    "layer": name,
                    "index": np.arange(evals.size, dtype=np.int64),
                    "value": evals,
                }
            )
        )
    if not frames:
        return pd.DataFrame({"step": [], "kind": [], "layer": [], "index": [], "value": []}).astype(
            {"step": np.int64, "kind": object, "layer": object, "index": np.int64, "value": np.float64}
        )
    return pd.concat(frames, ignore_index=True)
