"""Spectra and landscapes: Hessian density and top-k, weight ESDs with their fits, loss-landscape slices.

Inputs are a run's tidy `spectra` table (`step, kind, layer, index, value`), its history, fitted
objects from `learnmech_core.spectra` (`MPFit`, `PowerLawFit`) and landscape tables from
`learnmech_core.landscape`; outputs are `go.Figure`s. Spectra use log scales. Reference curves (the
2/eta line, the Marchenko-Pastur density, the fitted power law) are drawn in the prediction colour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import PREDICTION_COLOR, SEQUENCE, layout, reference_line

SPECTRA_KINDS = {
    "hessian_density": "Hessian spectral density",
    "hessian_topk": "top Hessian eigenvalues",
    "weight_esd": "weight-matrix spectra",
    "ntk_eig": "NTK eigenvalues",
}


def spectra_steps(spectra: pd.DataFrame, kind: str) -> list[int]:
    """Steps at which rows of a kind (`hessian_density` matches its _x/_y rows) were recorded."""
    if spectra is None or not len(spectra):
        return []
    kinds = spectra["kind"].astype(str)
    mask = kinds.str.startswith(kind)
    return sorted(int(s) for s in spectra.loc[mask, "step"].unique())


def nearest_step(steps: Sequence[int], step: int) -> int | None:
    """The recorded step closest to `step` (None when nothing was recorded)."""
    if not len(steps):
        return None
    return int(min(steps, key=lambda s: (abs(s - step), s)))


def _empty(fig: go.Figure, text: str) -> None:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 15, "color": "#666"})


def hessian_density_figure(spectra: pd.DataFrame, step: int, presentation: bool = False, lr: float | None = None,
                           height: int | None = None) -> go.Figure:
    """Hessian spectral density (stochastic Lanczos quadrature) at one step, density on a log scale."""
    fig = go.Figure()
    s = spectra[spectra["step"] == step] if len(spectra) else spectra
    xs = s[s["kind"] == "hessian_density_x"].sort_values("index")["value"].to_numpy(dtype=float)
    ys = s[s["kind"] == "hessian_density_y"].sort_values("index")["value"].to_numpy(dtype=float)
    if len(xs) and len(xs) == len(ys):
        floor = max(float(np.nanmax(ys)) * 1e-6, 1e-12) if np.isfinite(ys).any() else 1e-12
        fig.add_trace(go.Scatter(x=xs, y=np.maximum(ys, floor), mode="lines", name=f"step {step}",
                                 line={"color": SEQUENCE[0], "width": 2}, fill="tozeroy",
                                 hovertemplate="λ=%{x:.4g}<br>density=%{y:.3g}<extra></extra>"))
        if lr:
            fig.add_vline(x=2.0 / lr, line_dash="dash", line_color=PREDICTION_COLOR,
                          annotation_text=f"2/η = {2.0 / lr:.3g}", annotation_position="top left")
    else:
        _empty(fig, "no Hessian density recorded at this step<br>(record 'Hessian spectral density' on Explore)")
    return layout(fig, f"Where do the Hessian's eigenvalues sit at step {step}?", "eigenvalue λ",
                  "spectral density (log)", presentation=presentation, log_y=bool(len(xs)), height=height)


def topk_figure(spectra: pd.DataFrame, lr: float | None = None, presentation: bool = False,
                step: int | None = None, height: int | None = None) -> go.Figure:
    """Top-k Hessian eigenvalues against step (one line per rank), with 2/eta; a marker at `step`."""
    fig = go.Figure()
    s = spectra[spectra["kind"] == "hessian_topk"] if len(spectra) else spectra
    if len(s):
        table = s.pivot_table(index="step", columns="index", values="value", aggfunc="first").sort_index()
        for i, col in enumerate(table.columns):
            ys = table[col].to_numpy(dtype=float)
            fig.add_trace(go.Scatter(x=table.index.to_numpy(), y=ys, mode="lines+markers",
                                     name=f"λ<sub>{int(col) + 1}</sub>",
                                     line={"color": SEQUENCE[i % len(SEQUENCE)], "width": 2}, marker={"size": 5}))
        if lr:
            reference_line(fig, 2.0 / lr, f"2/η = {2.0 / lr:.3g}")
        if step is not None:
            fig.add_vline(x=step, line_color="#999", line_width=1)
    else:
        _empty(fig, "no top-k Hessian eigenvalues recorded<br>(record 'Top-k Hessian eigenvalues' on Explore)")
    return layout(fig, "Do the top Hessian eigenvalues rise to 2/η?", "step t", "eigenvalue λ<sub>i</sub>",
                  presentation=presentation, height=height)


def _log_bins(values: np.ndarray, bins: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.array([lo * 0.9, hi * 1.1])
    return np.geomspace(lo, hi * (1 + 1e-9), bins + 1)


def esd_figure(eigenvalues: np.ndarray, layer: str, mp=None, power_law=None, presentation: bool = False,
               bins: int = 40, step: int | None = None, height: int | None = None) -> go.Figure:
    """A layer's ESD as a histogram density on log-log axes, with the fitted MP bulk and power-law tail.

    `mp` is a `spectra.MPFit` (its density is scaled by the bulk's share of eigenvalues); `power_law` a
    `spectra.PowerLawFit` (drawn for x >= xmin, scaled by the tail's share).
    """
    from ..spectra import mp_density

    fig = go.Figure()
    ev = np.asarray(eigenvalues, dtype=float)
    ev = ev[np.isfinite(ev) & (ev > 0)]
    at = f" at step {step}" if step is not None else ""
    if len(ev) < 2:
        _empty(fig, "too few positive eigenvalues to draw a spectrum")
        return layout(fig, f"Weight spectrum of {layer}{at}", "eigenvalue λ of WᵀW/N", "density",
                      presentation=presentation, height=height)
    edges = _log_bins(ev, min(bins, max(5, len(ev) // 2)))
    counts, edges = np.histogram(ev, bins=edges)
    density = counts / (len(ev) * np.diff(edges))
    keep = density > 0
    # a step outline (not bars: bar widths misbehave on log axes); empty bins are gaps
    step_y = np.where(keep, density, np.nan)
    fig.add_trace(go.Scatter(x=edges, y=np.append(step_y, step_y[-1]), mode="lines", line_shape="hv",
                             name=f"ESD ({len(ev)} eigenvalues)", fill="tozeroy",
                             line={"color": SEQUENCE[0], "width": 2}, fillcolor="rgba(31,119,180,0.35)",
                             hovertemplate="λ≈%{x:.3g}<br>density=%{y:.3g}<extra></extra>"))
    ymin = float(density[keep].min()) if keep.any() else 1e-6
    if mp is not None and math.isfinite(getattr(mp, "sigma2", float("nan"))):
        xs = np.geomspace(max(mp.lambda_minus, ev.min() * 0.5, 1e-12), mp.lambda_plus, 300)
        share = max(len(ev) - max(mp.n_outliers, 0), 1) / len(ev)
        ys = share * mp_density(xs, mp.sigma2, mp.aspect_ratio)
        ok = ys > ymin * 1e-2
        fig.add_trace(go.Scatter(x=xs[ok], y=ys[ok], mode="lines",
                                 name=f"Marchenko–Pastur (σ²={mp.sigma2:.3g}, q={mp.aspect_ratio:.2g})",
                                 line={"color": PREDICTION_COLOR, "width": 2.5}))
        fig.add_vline(x=mp.lambda_plus, line_dash="dot", line_color=PREDICTION_COLOR,
                      annotation_text=f"λ₊ ({mp.n_outliers} outliers above)", annotation_position="top")
    if power_law is not None and math.isfinite(getattr(power_law, "alpha", float("nan"))):
        a, xmin = power_law.alpha, power_law.xmin
        xs = np.geomspace(xmin, ev.max(), 100)
        share = power_law.n_tail / len(ev)
        ys = share * (a - 1.0) / xmin * (xs / xmin) ** (-a)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"power-law tail α = {a:.2f} (λ ≥ {xmin:.3g})",
                                 line={"color": "#d62728", "width": 2.5, "dash": "dash"}))
    title = f"Is {layer} heavy-tailed?"
    if power_law is not None and math.isfinite(getattr(power_law, "alpha", float("nan"))):
        title += f" α = {power_law.alpha:.2f}"
    title += f" (step {step})" if step is not None else ""
    fig = layout(fig, title, "eigenvalue λ of WᵀW/N (log)", "density (log)", presentation=presentation,
                 log_x=True, log_y=True, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return fig


def alpha_figure(history: pd.DataFrame, presentation: bool = False, step: int | None = None,
                 height: int | None = None) -> go.Figure:
    """Power-law alpha of each layer's weight spectrum against step (columns `alpha_<layer>`)."""
    fig = go.Figure()
    cols = [c for c in history.columns if c.startswith("alpha_") and c != "alpha_mean"] if len(history) else []
    for i, col in enumerate(cols):
        h = history[["step", col]].dropna()
        fig.add_trace(go.Scatter(x=h["step"], y=h[col], mode="lines+markers", name=col[len("alpha_"):],
                                 line={"color": SEQUENCE[i % len(SEQUENCE)], "width": 2}, marker={"size": 5}))
    if cols:
        reference_line(fig, 2.0, "α = 2 (very heavy-tailed)")
        if step is not None:
            fig.add_vline(x=step, line_color="#999", line_width=1)
    else:
        _empty(fig, "no weight-spectrum α recorded<br>(record 'Weight spectra' on Explore)")
    return layout(fig, "Do the weight spectra grow heavier tails during training?", "step t",
                  "power-law exponent α (smaller = heavier tail)", presentation=presentation, height=height)


def landscape_1d_figure(table: pd.DataFrame, presentation: bool = False,
                        x_title: str = "α (distance along the direction)",
                        title: str = "Is the minimum wide or sharp along this direction?", log_y: bool = False,
                        height: int | None = None) -> go.Figure:
    """Loss along 1-D slices: columns (alpha, loss[, direction]); one line per direction."""
    fig = go.Figure()
    groups = table.groupby("direction", sort=False) if "direction" in table else [("loss", table)]
    for i, (name, part) in enumerate(groups):
        part = part.sort_values("alpha")
        fig.add_trace(go.Scatter(x=part["alpha"], y=part["loss"], mode="lines", name=str(name),
                                 line={"color": SEQUENCE[i % len(SEQUENCE)], "width": 2.5}))
    fig.add_vline(x=0.0, line_color="#999", line_width=1, annotation_text="trained weights", annotation_position="top")
    return layout(fig, title, x_title, "training loss" + (" (log)" if log_y else ""), presentation=presentation,
                  log_y=log_y, height=height)


def landscape_2d_figure(table: pd.DataFrame, kind: str = "contour", presentation: bool = False,
                        log_loss: bool = True, x_title: str = "α (direction 1)", y_title: str = "β (direction 2)",
                        title: str = "What does the loss look like around the trained weights?",
                        height: int | None = None) -> go.Figure:
    """Loss on a 2-D grid (columns alpha, beta, loss) as a contour map or a 3-D surface."""
    if kind not in ("contour", "surface"):
        raise ValueError(f"kind must be contour or surface (got {kind!r})")
    grid = table.pivot_table(index="beta", columns="alpha", values="loss", aggfunc="first")
    grid = grid.sort_index().sort_index(axis=1)
    z = grid.to_numpy(dtype=float)
    z = np.where(np.isfinite(z), z, np.nan)
    label = "loss"
    if log_loss and np.nanmin(z) > 0:
        z, label = np.log10(z), "log₁₀ loss"
    xs, ys = grid.columns.to_numpy(dtype=float), grid.index.to_numpy(dtype=float)
    fig = go.Figure()
    if kind == "contour":
        fig.add_trace(go.Contour(x=xs, y=ys, z=z, colorscale="Viridis", colorbar={"title": {"text": label}},
                                 contours={"showlabels": True},
                                 hovertemplate="α=%{x:.3g}<br>β=%{y:.3g}<br>%{z:.4g}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "x", "size": 12, "color": "white",
                                 "line": {"width": 2, "color": "black"}}, name="trained weights"))
        fig = layout(fig, title, x_title, y_title, presentation=presentation, height=height)
    else:
        fig.add_trace(go.Surface(x=xs, y=ys, z=z, colorscale="Viridis", colorbar={"title": {"text": label}}))
        fig = layout(fig, title, presentation=presentation, height=height or (620 if presentation else 520))
        fig.update_layout(scene={"xaxis_title": x_title, "yaxis_title": y_title, "zaxis_title": label})
    return fig


def eigenvalue_table(spectra: pd.DataFrame, kind: str, step: int) -> pd.DataFrame:
    """Rows of one kind at one step (for CSV download), sorted by layer and index."""
    if not len(spectra):
        return spectra
    s = spectra[(spectra["step"] == step) & (spectra["kind"].astype(str).str.startswith(kind))]
    return s.sort_values(["kind", "layer", "index"]).reset_index(drop=True)
