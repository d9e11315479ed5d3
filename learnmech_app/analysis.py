"""Measurements the Spectra page makes on a stored run, cached by run key and options.

These call the core (`spectra`, `curvature`, `landscape`, `train.build_model`) on a stored run's
recorded eigenvalues or final weights; nothing here is new science. Results are cached with
`st.cache_data` keyed by the run key and plain options (never tensors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from learnmech_core import spectra as core_spectra
from learnmech_core.train import build_model, loss_function

from . import resources

MAX_LANDSCAPE_EXAMPLES = 512


def _run(key: str):
    run, _ = resources.load_run(key)
    if run is None:
        raise ValueError(f"run {key} is not in the store or the gallery")
    return run


def layer_shape(run, layer: str) -> tuple[int, ...] | None:
    """Shape of a layer's weight from the run's saved weights (None when weights were not saved)."""
    if run.weights and layer in run.weights:
        return tuple(run.weights[layer].shape)
    return None


@st.cache_data(show_spinner=False, max_entries=128)
def esd_fits(key: str, step: int, layer: str) -> dict:
    """Eigenvalues of a layer's ESD at a step, with the MP fit (needs the shape) and the power-law fit."""
    run = _run(key)
    s = run.spectra
    rows = s[(s["kind"] == "weight_esd") & (s["step"] == step) & (s["layer"] == layer)].sort_values("index")
    ev = rows["value"].to_numpy(dtype=float)
    out = {"eigenvalues": ev, "mp": None, "power_law": None, "notes": []}
    if len(ev) < 2:
        out["notes"].append("too few eigenvalues for a fit")
        return out
    shape = layer_shape(run, layer)
    if shape is not None:
        n, m = max(shape[0], int(np.prod(shape[1:]))), min(shape[0], int(np.prod(shape[1:])))
        try:
            out["mp"] = core_spectra.marchenko_pastur_fit(ev, m / n)
        except ValueError as err:
            out["notes"].append(f"no Marchenko–Pastur fit: {err}")
    else:
        out["notes"].append("no Marchenko–Pastur fit: the run kept no weights, so the layer's shape is unknown")
    try:
        out["power_law"] = core_spectra.power_law_alpha(ev)
    except ValueError as err:
        out["notes"].append(f"no power-law fit: {err}")
    return out


def esd_layers(run, step: int) -> list[str]:
    s = run.spectra
    if not len(s):
        return []
    rows = s[(s["kind"] == "weight_esd") & (s["step"] == step)]
    return list(dict.fromkeys(rows["layer"].astype(str)))


def _training_batch(run, model, data, limit: int | None = MAX_LANDSCAPE_EXAMPLES):
    """The run's training inputs and loss targets (the first `limit` examples) in the model's dtype."""
    n = len(data.x_train) if limit is None else min(len(data.x_train), limit)
    dtype = next(model.parameters()).dtype
    x = data.x_train[:n]
    y = data.targets(data.y_train[:n], run.spec.optim.loss)
    return (x.to(dtype) if x.is_floating_point() else x), (y.to(dtype) if y.is_floating_point() else y)


@st.cache_data(show_spinner=False, max_entries=32)
def landscape(key: str, directions: str, dims: int, radius: float, points: int, seed: int) -> pd.DataFrame:
    """Loss around the run's final weights along random (filter-normalised) or top-Hessian directions.

    1-D: columns alpha, loss, direction (one slice per direction, two directions); 2-D: alpha, beta, loss.
    """
    from learnmech_core import curvature
    from learnmech_core import landscape as core_landscape

    run = _run(key)
    if not run.weights:
        raise ValueError("this run kept no weights (probes.save_weights was off or the model was too large)")
    model, data = build_model(run.spec, weights=run.weights)
    model.eval()
    loss_fn = loss_function(run.spec.optim.loss)
    x, y = _training_batch(run, model, data)
    if directions == "hessian":
        vecs = curvature.top_eigenvalues(model, loss_fn, x, y, k=2, tol=1e-3,
                                         generator=torch.Generator().manual_seed(seed)).vectors
        d1, d2 = vecs[0], vecs[1]
        names = ("top Hessian eigenvector 1", "top Hessian eigenvector 2")
    else:
        gen = torch.Generator().manual_seed(seed)
        d1 = core_landscape.random_direction(model, gen, filter_normalize=True)
        d2 = core_landscape.random_direction(model, gen, filter_normalize=True)
        names = ("random direction 1", "random direction 2")
    grid = np.linspace(-radius, radius, points)
    if dims == 1:
        parts = []
        for d, name in zip((d1, d2), names, strict=True):
            part = core_landscape.loss_slice_1d(model, loss_fn, x, y, d, grid)
            part["direction"] = name
            parts.append(part)
        return pd.concat(parts, ignore_index=True)
    return core_landscape.loss_slice_2d(model, loss_fn, x, y, d1, d2, grid, grid)


@st.cache_data(show_spinner=False, max_entries=16)
def trajectory(key: str, points: int) -> dict:
    """The run's snapshots' PCA plane: surface (alpha, beta, loss), path (step, alpha, beta, loss), explained."""
    from learnmech_core.trajectory import path_losses, trajectory_landscape, trajectory_pca

    run = _run(key)
    if run.snapshots is None:
        raise ValueError("this run kept no weight snapshots (record 'Weight snapshots' on Explore)")
    pca = trajectory_pca(run.snapshots["weights"], run.snapshots["step"])
    model, data = build_model(run.spec)
    model.eval()
    x, y = _training_batch(run, model, data)
    loss_fn = loss_function(run.spec.optim.loss)
    path = pca.path()
    path["loss"] = path_losses(model, loss_fn, x, y, run.snapshots["weights"])
    return {"surface": trajectory_landscape(model, loss_fn, x, y, pca, points=points), "path": path,
            "explained": pca.explained_variance_ratio, "examples": len(x)}


@st.cache_data(show_spinner=False, max_entries=16)
def curvature_split(key: str, k: int, batch_size: int) -> dict:
    """Top-k eigenvalues of H, its Gauss-Newton part G and residual R over the whole training set (final weights)."""
    from learnmech_core.gauss_newton import curvature_split as split

    run = _run(key)
    if not run.weights:
        raise ValueError("this run kept no weights (probes.save_weights was off or the model was too large)")
    model, data = build_model(run.spec, weights=run.weights)
    model.eval()
    x, y = _training_batch(run, model, data, limit=None)
    result = split(model, loss_function(run.spec.optim.loss), x, y, k=k, batch_size=batch_size)
    return {"table": result.table(), "converged": result.converged, "examples": result.n_examples,
            "batches": result.n_batches, "products": result.n_products}


# ------------------------------------------------------------------------------------------------
# overlays (Compare): the core's normalisations and collapse score, applied to stored runs


def normalised_series(kind: str):
    """A series function for the figure builders: (x_norm, y_norm) of `universality.normalise`."""
    from learnmech_core import universality

    def series(run):
        try:
            d = universality.normalise(run.history, run.spec, kind)
        except ValueError:
            return np.zeros(0), np.zeros(0)
        return d["x_norm"].to_numpy(dtype=float), d["y_norm"].to_numpy(dtype=float)

    return series


def raw_series(metric: str, x: str):
    from learnmech_core.plots.runs import x_values

    def series(run):
        h = run.history
        if metric not in h:
            return np.zeros(0), np.zeros(0)
        return x_values(h, run.spec, x), h[metric].to_numpy(dtype=float)

    return series


def collapse(runs: list, metric: str, x: str, kind: str | None) -> tuple[float, str]:
    """(score, what it means): with a normalisation, `universality.collapse_score` (spread after / before,
    < 1 collapses); without, the relative spread of the raw curves on the chosen x axis."""
    from learnmech_core import universality

    raw = [raw_series(metric, x)(r) for r in runs]
    raw = [(a, b) for a, b in raw if np.isfinite(b).sum() >= 2]
    try:
        if kind:
            norm = [normalised_series(kind)(r) for r in runs]
            norm = [(a, b) for a, b in norm if np.isfinite(b).sum() >= 2]
            steps = [raw_series(metric, "step")(r) for r in runs]
            steps = [(a, b) for a, b in steps if np.isfinite(b).sum() >= 2]
            score = universality.collapse_score(steps, norm)
            return score, "spread of the normalised curves / spread of the raw ones (< 1: they collapse)"
        return universality.curve_spread(raw), "mean relative spread (std / mean) across the curves"
    except ValueError as err:
        return float("nan"), str(err)
