"""Normalisations that make curves from different systems comparable, and a collapse score.

Pure functions on histories (pandas) and arrays (numpy); nothing here trains or plots.

Time axes (`time_axis`):
- `step`: the optimiser step.
- `lr_time`: sum of the learning rate over the steps taken, t = sum_{s < step} eta_s (eta x step
  for a constant rate), read from the history's `lr` column (left Riemann sum between logged rows).
- `effective_time`: lr_time / (1 - momentum) for heavy-ball momentum (torch's SGD momentum takes
  steps of eta / (1 - mu) on a slowly varying gradient), lr_time otherwise (GD, SGD, Adam, AdamW).
- `fraction`: step / total steps of the run (the compute fraction at fixed model size and batch).

`normalise(history, spec, kind)` returns one row per logged step with `step, x, y` (raw: step and
the measured column) and `x_norm, y_norm` (the normalised axes); `KINDS[kind]` holds the column
used and the axis labels. Kinds:

| kind | column | x_norm | y_norm |
|---|---|---|---|
| `sharpness` | sharpness | eta x step | `optimiser_sharpness` / stability threshold (2/eta for GD) |
| `precond_sharpness` | precond_sharpness | eta x step | lambda_max(P^-1 H) / ((2 + 2 beta1) / ((1 - beta1) eta)) |
| `loss_initial` | loss | effective time | loss / loss at step 0 |
| `loss_final` | loss | fraction of training | loss / final loss |
| `compute_fraction` | loss | step / total steps | (L - L_irr) / (L_final - L_irr) (L_irr = `irreducible`) |

The collapse score compares the spread of a family of curves after normalisation with their
spread before it: `collapse_score(raw, normalised)` = `curve_spread(normalised) / curve_spread(raw)`;
below 1 the normalisation collapses the curves (0.2 = five times less spread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

TIME_AXES = ("step", "lr_time", "effective_time", "fraction")


@dataclass(frozen=True)
class Normalisation:
    """What a normalisation kind measures and how its axes are labelled."""

    kind: str
    column: str
    x_label: str
    y_label: str
    x_norm_label: str
    y_norm_label: str
    description: str


KINDS = MappingProxyType({
    "sharpness": Normalisation(
        "sharpness", "sharpness", "step", "sharpness (top Hessian eigenvalue)", "\u03b7 \u00d7 step",
        "sharpness / (2/\u03b7)",
        "sharpness divided by the stability threshold 2/\u03b7 (momentum: (2+2\u03bc)/\u03b7)"),
    "precond_sharpness": Normalisation(
        "precond_sharpness", "precond_sharpness", "step",
        "preconditioned sharpness \u03bb\u2098\u2090\u2093(P\u207b\u00b9H)", "\u03b7 \u00d7 step",
        "\u03bb\u2098\u2090\u2093(P\u207b\u00b9H) / ((2+2\u03b2\u2081)/((1\u2212\u03b2\u2081)\u03b7))",
        "Adam's preconditioned sharpness divided by its stability threshold (38/\u03b7 for \u03b2\u2081 = 0.9)"),
    "loss_initial": Normalisation(
        "loss_initial", "loss", "step", "training loss",
        "effective time \u03b7 \u00d7 step (/(1 - \u03bc) with momentum)",
        "loss / initial loss", "loss divided by its value at step 0, against the effective time"),
    "loss_final": Normalisation(
        "loss_final", "loss", "step", "training loss", "fraction of training", "loss / final loss",
        "loss divided by its final value, against the fraction of training"),
    "compute_fraction": Normalisation(
        "compute_fraction", "loss", "step", "training loss", "compute fraction (step / total steps)",
        "(L - L_irr) / (L_final - L_irr)", "scaling-collapse normalisation of a loss curve by its compute fraction"),
})


def stability_threshold(spec, lr: float | np.ndarray | None = None) -> float | np.ndarray:
    """Largest stable sharpness at learning rate lr (default spec.optim.lr) for the spec's optimiser.

    GD/SGD: 2/eta. Heavy-ball momentum (torch convention): (2 + 2 mu) / eta. Adam/AdamW:
    (2 + 2 beta1) / ((1 - beta1) eta) (Cohen et al. 2022). The sharpness it bounds is the top
    eigenvalue of the Hessian in the optimiser's own geometry, lambda_max(P^-1 (H + wd I)) with P from
    the per-group lr multipliers (and Adam's second moments) and wd a weight decay coupled into the
    gradient (`curvature.optimizer_top_eigenvalues`): the history's `precond_sharpness` where a run
    recorded it (Adam, or SGD under muP away from its base width or with weight decay), which for
    plain GD is the `sharpness` itself (see `optimiser_sharpness`).
    """
    o = spec.optim
    eta = np.asarray(o.lr if lr is None else lr, dtype=float)
    if o.name == "momentum":
        value = (2.0 + 2.0 * o.momentum) / eta
    elif o.name in ("adam", "adamw"):
        value = (2.0 + 2.0 * o.beta1) / ((1.0 - o.beta1) * eta)
    else:
        value = 2.0 / eta
    return float(value) if value.ndim == 0 else value


def optimiser_sharpness(history: pd.DataFrame, column: str = "sharpness") -> np.ndarray:
    """Per row, the sharpness that `stability_threshold` bounds: `precond_sharpness` where the history has
    that column (the top eigenvalue in the optimiser's own geometry), else `column` (plain GD's sharpness)."""
    name = "precond_sharpness" if "precond_sharpness" in history else column
    return history[name].to_numpy(dtype=float)


def lr_time(history: pd.DataFrame) -> np.ndarray:
    """sum_{s < step} eta_s at each logged row (left Riemann sum of the `lr` column over `step`)."""
    steps = history["step"].to_numpy(dtype=float)
    if "lr" not in history or len(steps) == 0:
        raise ValueError("history must have step and lr columns to compute eta x step")
    lrs = history["lr"].to_numpy(dtype=float)
    gaps = np.diff(steps, prepend=steps[0])
    rates = np.concatenate([[lrs[0]], lrs[:-1]])  # the rate in force since the previous logged row
    return steps[0] * lrs[0] + np.cumsum(gaps * rates)


def time_axis(history: pd.DataFrame, spec, kind: str = "lr_time") -> np.ndarray:
    """The history's time in the units `kind` names (one of TIME_AXES)."""
    if kind not in TIME_AXES:
        raise ValueError(f"time axis must be one of {', '.join(TIME_AXES)} (got {kind!r})")
    steps = history["step"].to_numpy(dtype=float)
    if kind == "step":
        return steps
    if kind == "fraction":
        return steps / float(spec.optim.steps)
    t = lr_time(history)
    if kind == "effective_time" and spec.optim.name == "momentum":
        t = t / (1.0 - spec.optim.momentum)
    return t


def compute_fraction_normalise(steps, loss, total: float | None = None, irreducible: float = 0.0):
    """Scaling-collapse axes: x = step / total, y = (L - L_irr) / (L_final - L_irr) (total default: last step)."""
    steps = np.asarray(steps, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if steps.shape != loss.shape or steps.size == 0:
        raise ValueError("steps and loss must be non-empty arrays of the same length")
    total = float(steps[-1]) if total is None else float(total)
    if not total > 0:
        raise ValueError(f"total must be positive (got {total:g})")
    final = float(loss[-1]) - irreducible
    if not (np.isfinite(final) and final > 0):
        raise ValueError(f"final loss minus irreducible loss must be positive (got {final:g})")
    return steps / total, (loss - irreducible) / final


def normalise(history: pd.DataFrame, spec, kind: str, irreducible: float = 0.0) -> pd.DataFrame:
    """Rows with a finite value of the kind's column: step, x (step), y (raw value), x_norm, y_norm."""
    if kind not in KINDS:
        raise ValueError(f"normalisation kind must be one of {', '.join(KINDS)} (got {kind!r})")
    column = KINDS[kind].column
    if column not in history:
        raise ValueError(f"history has no {column!r} column (needed for the {kind!r} normalisation)")
    full_t = {"sharpness": "lr_time", "precond_sharpness": "lr_time", "loss_initial": "effective_time",
              "loss_final": "fraction", "compute_fraction": "fraction"}[kind]
    x_norm_all = time_axis(history, spec, full_t)
    values = history[column].to_numpy(dtype=float)
    keep = np.isfinite(values)
    out = pd.DataFrame({"step": history["step"].to_numpy()[keep], "x": history["step"].to_numpy(dtype=float)[keep],
                        "y": values[keep], "x_norm": x_norm_all[keep]})
    if kind in ("sharpness", "precond_sharpness"):
        lrs = history["lr"].to_numpy(dtype=float)[keep]
        out["y_norm"] = optimiser_sharpness(history, column)[keep] / stability_threshold(spec, lrs)
    elif kind == "loss_initial":
        first = out["y"].iloc[0] if len(out) else np.nan
        out["y_norm"] = out["y"] / first if first else np.nan
    elif kind == "loss_final":
        last = out["y"].iloc[-1] if len(out) else np.nan
        out["y_norm"] = out["y"] / last if last else np.nan
    else:
        if len(out):
            _, y = compute_fraction_normalise(out["x"], out["y"], total=spec.optim.steps, irreducible=irreducible)
            out["y_norm"] = y
        else:
            out["y_norm"] = np.nan
    return out.reset_index(drop=True)


def _common_grid(curves: Sequence[tuple], n_grid: int, log_x: bool) -> np.ndarray:
    """n_grid points spanning the x range every curve covers."""
    lo = max(float(np.min(x)) for x, _ in curves)
    hi = min(float(np.max(x)) for x, _ in curves)
    if not hi > lo:
        raise ValueError(f"curves must share an x range to be compared (overlap [{lo:g}, {hi:g}] is empty)")
    if log_x:
        if lo <= 0:
            raise ValueError("log_x needs positive x values on the shared range")
        return np.geomspace(lo, hi, n_grid)
    return np.linspace(lo, hi, n_grid)


def curve_spread(curves: Sequence[tuple], n_grid: int = 200, log_x: bool = False) -> float:
    """Mean over a shared x grid of std / |mean| across curves (population std), each curve linearly interpolated.

    `curves` is a sequence of (x, y) pairs; x need not be sorted. The relative spread is unit-free,
    so curves on different axes (raw vs normalised) can be compared.
    """
    if len(curves) < 2:
        raise ValueError(f"curve_spread needs at least two curves (got {len(curves)})")
    clean = []
    for x, y in curves:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 2:
            raise ValueError("each curve needs at least two finite points")
        order = np.argsort(x[ok], kind="stable")
        clean.append((x[ok][order], y[ok][order]))
    grid = _common_grid(clean, n_grid, log_x)
    values = np.stack([np.interp(grid, x, y) for x, y in clean])
    mean = np.abs(values.mean(axis=0))
    std = values.std(axis=0)
    rel = np.where(mean > 0, std / np.where(mean > 0, mean, 1.0), np.where(std > 0, np.inf, 0.0))
    return float(np.mean(rel))


def collapse_score(raw: Sequence[tuple], normalised: Sequence[tuple], n_grid: int = 200,
                   log_x: bool = False) -> float:
    """Spread of the normalised curves relative to the spread of the raw ones (< 1: they collapse)."""
    before = curve_spread(raw, n_grid=n_grid, log_x=log_x)
    after = curve_spread(normalised, n_grid=n_grid, log_x=log_x)
    if before == 0:
        return 0.0 if after == 0 else float("inf")
    return after / before
