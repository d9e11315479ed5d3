"""Curves of one or many runs: training curves (live or finished), overlays, seed bands, thumbnails.

Runs in, `go.Figure` out; nothing here trains or reads the store. A run's colour is its architecture's
and its dash its dataset's (`style`), so the same run looks the same on every page. Every trace is
downsampled to `style.MAX_POINTS`; non-finite values are gaps. A diverged run is drawn up to its last
finite value and marked there with a cross; stopped and failed runs say so in the legend.

x axes (`X_AXES`): `step`; `time_s` (wall time); and the time axes of `learnmech_core.universality`:
`lr_time` = sum of the learning rate over the steps taken (eta x step at a constant rate: the natural
time of gradient flow, so runs at different learning rates overlay), `effective_time` (lr_time / (1 - mu)
under heavy-ball momentum) and `fraction` = step / total steps. Normalised y axes also come from
`universality` (`normalise`, `stability_threshold`); this module only draws.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import universality
from ..data import display_name
from .style import (
    PREDICTION_COLOR,
    UNCERTIFIED_NAME,
    arch_color,
    array,
    dataset_dash,
    downsample,
    family_color,
    layout,
    log_ticks,
    reference_line,
    spec_hover,
    uncertified,
    uncertified_trace,
)

X_AXES = {
    "step": "step t",
    "time_s": "wall time (s)",
    "lr_time": "η·t (learning-rate time Σ η)",
    "effective_time": "effective time Σ η / (1 − μ)",
    "fraction": "fraction of training t / T",
}
X_SHORT = {"step": "step", "time_s": "time", "lr_time": "η·t", "effective_time": "η·t/(1−μ)", "fraction": "t / T"}

METRIC_LABELS = {
    "loss": "training loss (batch)",
    "train_loss": "training loss (full set)",
    "test_loss": "test loss",
    "train_acc": "training accuracy",
    "test_acc": "test accuracy",
    "sharpness": "sharpness λₘₐₓ(H)",
    "precond_sharpness": "preconditioned sharpness λₘₐₓ(P⁻¹H)",
    "grad_norm": "gradient norm ‖∇L‖",
    "param_norm": "parameter norm ‖θ‖",
    "weight_change": "relative weight change ‖θ−θ₀‖/‖θ₀‖",
    "lr": "learning rate η",
    "ntk_top": "top NTK eigenvalue",
    "ntk_trace": "NTK trace",
    "ntk_distance": "NTK distance from initialisation",
    "noise_scale": "gradient noise scale B_simple",
    "nc1": "NC1 (within-class variability)",
    "nc2_equinorm": "NC2 equinorm",
    "nc2_equiangle": "NC2 equiangularity",
    "nc3": "NC3 (self-duality)",
    "nc4": "NC4 (nearest-class-centre disagreement)",
    "alpha_mean": "mean power-law α of the weight spectra",
}

# titles that ask the question a chart answers (others: "How does <label> evolve?")
METRIC_QUESTIONS = {
    "loss": "Is the training loss falling?",
    "train_loss": "Is the training loss falling?",
    "test_loss": "Does it generalise?",
    "train_acc": "Does the network learn to classify?",
    "test_acc": "Does the network learn to classify?",
    "alpha_mean": "Do the weight spectra grow heavy tails?",
    "ntk_distance": "Does the NTK move away from its start?",
    "ntk_top": "Does the top NTK eigenvalue grow?",
    "noise_scale": "How noisy are the gradients?",
    "nc1": "Do features collapse onto their class means?",
    "precond_sharpness": "Does preconditioned sharpness stop at its threshold?",
    "balance_0": "Is the balance between layers conserved?",
    "weight_change": "How far do the weights move?",
    "grad_norm": "How large are the gradients?",
}

# columns that are bookkeeping, not measurements worth a chart of their own
_NOT_METRICS = {"step", "time_s", "sharpness_hvps", "sharpness_converged", "precond_sharpness_converged"}
_ORDER = ["loss", "train_loss", "test_loss", "train_acc", "test_acc", "sharpness", "precond_sharpness",
          "grad_norm", "weight_change", "param_norm", "lr"]
_SHORT = {"model.width": "w", "model.depth": "d", "optim.lr": "η", "optim.batch_size": "B", "seed": "seed",
          "model.param": "", "model.activation": "", "optim.name": "", "optim.loss": "loss", "data.n_train": "n"}


def metric_label(name: str) -> str:
    """Human axis label of a history column."""
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    for prefix, text in (("alpha_", "power-law α of "), ("mp_ks_", "MP KS distance of "),
                         ("wnorm2_", "‖W‖² of layer "), ("balance_", "‖W_{l+1}‖² − ‖W_l‖², l = ")):
        if name.startswith(prefix):
            return text + name[len(prefix):]
    return name.replace("_", " ")


def metric_columns(runs: Iterable) -> list[str]:
    """Recorded numeric history columns of the runs (any run), the usual ones first."""
    seen: dict[str, None] = {}
    for run in runs:
        h = run.history
        for c in h.columns:
            if c not in _NOT_METRICS and pd.api.types.is_numeric_dtype(h[c]) and h[c].notna().any():
                seen[c] = None
    first = [c for c in _ORDER if c in seen]
    return first + sorted(c for c in seen if c not in first)


# ------------------------------------------------------------------------------------------------
# labels


def varying_fields(specs: Sequence) -> list[str]:
    """Dotted spec fields whose values differ among the specs (in spec order)."""
    flats = [s.flat() for s in specs]
    if len(flats) < 2:
        return []
    return [k for k in flats[0] if len({repr(f.get(k)) for f in flats}) > 1]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


# the settings people vary, most telling first; labels name at most LABEL_FIELDS of them
_LABEL_PRIORITY = ("model.width", "optim.lr", "model.depth", "seed", "model.param", "model.activation", "optim.name",
                   "optim.batch_size", "data.n_train", "optim.steps", "optim.loss", "optim.weight_decay")
LABEL_FIELDS = 3


def run_label(spec, varying: Sequence[str] = (), max_fields: int = LABEL_FIELDS) -> str:
    """'mlp · digits' plus (up to max_fields of) the fields that tell this run apart from the others shown."""
    flat = spec.flat()
    fields = [k for k in varying if k not in ("model.arch", "data.name")]
    fields = sorted(fields, key=lambda k: _LABEL_PRIORITY.index(k) if k in _LABEL_PRIORITY else len(_LABEL_PRIORITY))
    parts = []
    for k in fields[:max_fields]:
        short = _SHORT.get(k, k.split(".")[-1])
        parts.append(f"{short}={_fmt(flat.get(k))}" if short else _fmt(flat.get(k)))
    base = f"{spec.model.arch} · {display_name(spec.data.name)}"
    return base + (" (" + ", ".join(parts) + ")" if parts else "")


def run_labels(runs: Sequence) -> list[str]:
    """Distinct, short legend labels for runs shown together."""
    specs = [r.spec for r in runs]
    labels = [run_label(s, varying_fields(specs)) for s in specs]
    twice = {lab for lab in labels if labels.count(lab) > 1}
    # runs that still look alike (they differ in fields left out of the label): add the key
    return [f"{lab} [{s.key()[:6]}]" if lab in twice else lab for lab, s in zip(labels, specs, strict=True)]


# ------------------------------------------------------------------------------------------------
# data helpers


def x_values(history: pd.DataFrame, spec, x: str) -> np.ndarray:
    """The x coordinate of each history row for an axis in X_AXES."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)} (got {x!r})")
    if "step" not in history:
        return np.arange(len(history), dtype=float)
    if x == "time_s":
        return history["time_s"].to_numpy(dtype=float) if "time_s" in history else np.full(len(history), np.nan)
    if x in ("lr_time", "effective_time") and "lr" not in history:  # constant rate assumed
        t = history["step"].to_numpy(dtype=float) * spec.optim.lr
        return t / (1.0 - spec.optim.momentum) if x == "effective_time" and spec.optim.name == "momentum" else t
    return universality.time_axis(history, spec, x)


def smooth(y: np.ndarray, amount: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's): amount 0 = raw, 0.99 = very smooth. NaN stay NaN."""
    y = np.asarray(y, dtype=float)
    if not amount or amount <= 0 or len(y) < 2:
        return y
    amount = min(float(amount), 0.999)
    out = np.full_like(y, np.nan)
    avg, weight = 0.0, 0.0
    for i, v in enumerate(y):
        if not math.isfinite(v):
            continue
        avg = amount * avg + (1 - amount) * v
        weight = amount * weight + (1 - amount)
        out[i] = avg / weight
    return out


def _series(run, metric: str, x: str, transform=None, series=None) -> tuple[np.ndarray, np.ndarray]:
    if series is not None:  # (x, y) given by the caller, e.g. universality.normalise
        xs, ys = (np.asarray(a, dtype=float) for a in series(run))
        keep = ~np.isnan(xs) & ~np.isnan(ys)
        return xs[keep], np.where(np.isfinite(ys[keep]), ys[keep], np.nan)
    h = run.history
    if metric not in h or "step" not in h and x != "time_s":
        return np.zeros(0), np.zeros(0)
    xs = x_values(h, run.spec, x)
    ys = h[metric].to_numpy(dtype=float)
    if transform is not None:
        ys = transform(ys, run)
    keep = ~np.isnan(ys) & ~np.isnan(xs)
    xs, ys = xs[keep], ys[keep]
    ys = np.where(np.isfinite(ys), ys, np.nan)  # inf -> gap
    return xs, ys


def _uncertified_points(run, metric: str, x: str, transform=None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the run's `metric` values that their instrument did not certify (drawn hollow)."""
    h = run.history
    own = transform is _over_threshold and "precond_sharpness" in h  # the values drawn are precond_sharpness
    flags = uncertified(h, "precond_sharpness" if own else metric)
    if not flags.any() or "step" not in h and x != "time_s":
        return np.zeros(0), np.zeros(0)
    xs, ys = x_values(h, run.spec, x), h[metric].to_numpy(dtype=float)
    ys = transform(ys, run) if transform is not None else ys
    keep = flags & np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _hex_to_rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    r, g, b = int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    return f"rgba({r},{g},{b},{alpha})"


def _status_note(run) -> str:
    status = getattr(run, "status", "ok")
    return "" if status in ("ok", "running") else f" ({status})"


def _positive(values: Iterable[np.ndarray]) -> bool:
    vals = [v[np.isfinite(v)] for v in values]
    vals = [v for v in vals if len(v)]
    return bool(vals) and all((v > 0).all() for v in vals)


# ------------------------------------------------------------------------------------------------
# figures


def curves_figure(runs: Sequence, metric: str, x: str = "step", title: str | None = None,
                  log_y: bool | None = None, smoothing: float = 0.0, presentation: bool = False,
                  references: Sequence[tuple[float, str]] = (), labels: Sequence[str] | None = None,
                  transform=None, y_title: str | None = None, height: int | None = None) -> go.Figure:
    """One line per run of a history column against an x axis; references are horizontal lines.

    `log_y=None` picks a log axis for losses whose values are all positive. `transform(y, run)` maps
    the values first (e.g. sharpness x eta / 2). Diverged runs end in a cross at their last finite point.
    """
    labels = list(labels) if labels is not None else run_labels(runs)
    fig = go.Figure()
    drawn = []
    for run, label in zip(runs, labels, strict=True):
        xs, ys = _series(run, metric, x, transform)
        if not len(xs):
            continue
        ys = smooth(ys, smoothing)
        idx = downsample(ys)
        xs_d, ys_d = xs[idx], ys[idx]
        color, dash = arch_color(run.spec.model.arch), dataset_dash(run.spec.data.name)
        hover = spec_hover(run.spec)
        fig.add_trace(go.Scatter(
            x=xs_d, y=ys_d, mode="lines" if len(xs_d) > 1 else "markers", name=label + _status_note(run),
            legendgroup=run.spec.key(), line={"color": color, "dash": dash, "width": 2.5},
            marker={"color": color, "size": 8},
            hovertemplate=f"{X_AXES[x]}=%{{x:.4g}}<br>{metric}=%{{y:.4g}}<br>{hover}<extra>{label}</extra>",
        ))
        drawn.append(ys_d)
        ux, uy = _uncertified_points(run, metric, x, transform)
        if len(ux):
            fig.add_trace(uncertified_trace(ux, uy, color, run.spec.key(), show_legend=not any(
                t.name == UNCERTIFIED_NAME for t in fig.data)))
        if getattr(run, "status", "ok") == "diverged":
            finite = np.flatnonzero(np.isfinite(ys))
            if len(finite):
                i = finite[-1]
                fig.add_trace(go.Scatter(
                    x=[xs[i]], y=[ys[i]], mode="markers+text", text=["diverged"], textposition="top center",
                    marker={"symbol": "x", "size": 14, "color": color, "line": {"width": 2}},
                    legendgroup=run.spec.key(), showlegend=False, hoverinfo="skip", cliponaxis=False,
                    textfont={"color": color},
                ))
    for y, text in references:
        if y is not None and math.isfinite(y):
            reference_line(fig, y, text)
    mark_lr_changes(fig, runs, x)
    if log_y is None:
        log_y = ("loss" in metric or metric in ("grad_norm", "noise_scale", "sharpness")) and _positive(drawn)
    if not drawn:
        fig.add_annotation(text=f"no run has recorded {metric_label(metric)} yet", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 16, "color": "#666"})
    layout(fig, title or METRIC_QUESTIONS.get(metric, f"How does the {metric_label(metric)} evolve?"), X_AXES[x],
           y_title or metric_label(metric), presentation=presentation, log_y=bool(log_y), height=height)
    fig.update_layout(showlegend=bool(drawn))  # a single run is named too
    _legend_below_if_crowded(fig)
    return fig


def lr_change_points(run, x: str = "step") -> list[tuple[float, int, float]]:
    """(x, step, new lr) of each learning-rate change (`optim.lr_changes`) the run's history has reached."""
    changes = getattr(run.spec.optim, "lr_changes", ())
    h = run.history
    if not changes or "step" not in h or not len(h):
        return []
    steps = h["step"].to_numpy(dtype=float)
    xs = x_values(h, run.spec, x)
    out = []
    for step, lr in changes:
        i = int(np.searchsorted(steps, step))
        if i < len(steps) and math.isfinite(xs[i]):
            out.append((float(xs[i]), int(step), float(lr)))
    return out


def mark_lr_changes(fig: go.Figure, runs: Sequence, x: str = "step", limit: int = 6) -> None:
    """A dotted vertical line where a run's learning rate was changed, labelled with the new rate."""
    marks = [(xv, step, lr, arch_color(r.spec.model.arch)) for r in runs for xv, step, lr in lr_change_points(r, x)]
    for xv, step, lr, color in marks[:limit]:
        fig.add_vline(x=xv, line_dash="dot", line_color=color, line_width=2, annotation_position="top right",
                      annotation_text=f"η → {lr:g} (step {step})", annotation_font_color=color)


def threshold_traces(fig: go.Figure, runs: Sequence, x: str = "step") -> None:
    """The stability threshold of runs whose learning rate changed, as a stepped line following their η."""
    for r in runs:
        h = r.history
        if not lr_change_points(r, x) or "lr" not in h:
            continue
        xs = x_values(h, r.spec, x)
        ys = universality.stability_threshold(r.spec, h["lr"].to_numpy(dtype=float))
        line = {"color": PREDICTION_COLOR, "dash": "dash", "shape": "hv"}
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=line, name=f"{_threshold_name(r.spec)} (η changed)",
                                 hoverinfo="skip"))


def _threshold_name(spec) -> str:
    adam = "(2+2β₁)/((1−β₁)η)"
    return {"momentum": "(2+2μ)/η", "adam": adam, "adamw": adam}.get(spec.optim.name, "2/η")


def _legend_below_if_crowded(fig: go.Figure, limit: int = 4) -> None:
    names = [t.name for t in fig.data if t.showlegend is not False and t.name]
    if len(names) > limit or any(len(n) > 40 for n in names):
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                          height=(fig.layout.height or 420) + 22 * min(len(names), 12))


def two_over_eta_lines(runs: Sequence, limit: int = 4, column: str = "sharpness") -> list[tuple[float, str]]:
    """Stability thresholds (2/η for GD and SGD, (2+2μ)/η with momentum; for `precond_sharpness`, Adam's
    (2+2β₁)/((1−β₁)η)) of the runs' distinct settings, at most `limit` lines. A threshold bounds the
    sharpness in the optimiser's geometry: where a GD run recorded `precond_sharpness` (lr multipliers,
    weight decay), its line on the raw `sharpness` chart says so."""
    seen: dict[float, str] = {}
    for r in runs:
        adam = r.spec.optim.name in ("adam", "adamw")
        own = "precond_sharpness" in r.history
        if adam and column != "precond_sharpness":
            continue  # raw sharpness of Adam has no fixed threshold
        if lr_change_points(r):
            continue  # its threshold moves with η: drawn by threshold_traces
        if not adam and column == "precond_sharpness" and not own:
            continue
        value = float(universality.stability_threshold(r.spec))
        note = " (bounds λₘₐₓ(P⁻¹(H+wd)), not λₘₐₓ(H))" if own and not adam and column == "sharpness" else ""
        seen.setdefault(round(value, 12), f"{_threshold_name(r.spec)} = {value:.3g}" + note
                        + (f" (η = {r.spec.optim.lr:g})" if len({x.spec.optim.lr for x in runs}) > 1 else ""))
    if len(seen) > limit:
        return []
    return sorted(seen.items())


def _over_threshold(y: np.ndarray, run) -> np.ndarray:
    h = run.history
    lr = h["lr"].to_numpy(dtype=float) if "lr" in h and len(h) == len(y) else None
    if len(h) == len(y):  # the sharpness in the optimiser's own geometry, where the run recorded it
        y = universality.optimiser_sharpness(h)
    return y / universality.stability_threshold(run.spec, lr)


def sharpness_figure(runs: Sequence, x: str = "step", normalised: bool = False, presentation: bool = False,
                     smoothing: float = 0.0, column: str = "sharpness", labels=None, height=None) -> go.Figure:
    """Sharpness with its stability threshold (2/η for GD); normalised divides by the threshold (line at 1)."""
    if normalised:
        own = column == "sharpness" and any("precond_sharpness" in r.history for r in runs)
        y_title = "λₘₐₓ(P⁻¹(H+wd)) / threshold" if own else f"{metric_label(column)} / threshold"
        return curves_figure(runs, column, x, title="Does sharpness stop at 2/η? (normalised: λₘₐₓ / (2/η))",
                             transform=_over_threshold, log_y=False,
                             references=[(1.0, "stability threshold (edge of stability)")], presentation=presentation,
                             smoothing=smoothing, y_title=y_title, labels=labels, height=height)
    fig = curves_figure(runs, column, x, title="Does sharpness stop at 2/η?", log_y=False,
                        references=two_over_eta_lines(runs, column=column), presentation=presentation,
                        smoothing=smoothing, labels=labels, height=height)
    threshold_traces(fig, runs, x)
    return fig


def group_runs(runs: Sequence, by: Sequence[str]) -> list[tuple[str, list]]:
    """Runs grouped by equal values of the given dotted spec fields (others, e.g. seed, averaged over)."""
    groups: dict[tuple, list] = {}
    for run in runs:
        flat = run.spec.flat()
        groups.setdefault(tuple(repr(flat.get(f)) for f in by), []).append(run)
    out = []
    for members in groups.values():
        spec = members[0].spec
        label = run_label(spec, [f for f in by]) if by else "all runs"
        if len(members) > 1:
            label += f" [{len(members)} runs]"
        out.append((label, members))
    return out


def common_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 400) -> np.ndarray:
    """An x grid over the range every curve covers (empty when they do not overlap)."""
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        return np.zeros(0)
    lo = max(float(np.nanmin(x)) for x, _ in curves)
    hi = min(float(np.nanmax(x)) for x, _ in curves)
    if not hi > lo:
        return np.zeros(0)
    return np.linspace(lo, hi, points)


def interpolate_curves(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """Each curve linearly interpolated on the grid (rows = curves; NaN outside a curve's range)."""
    out = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x) < 2:
            continue
        order = np.argsort(x, kind="stable")
        out[i] = np.interp(grid, x[order], y[order], left=np.nan, right=np.nan)
    return out


def band_figure(groups: Sequence[tuple[str, list]], metric: str, x: str = "step", band: str = "std",
                smoothing: float = 0.0, log_y: bool | None = None, presentation: bool = False,
                title: str | None = None, references: Sequence[tuple[float, str]] = (), transform=None,
                y_title: str | None = None, colour_by_arch: bool = True, height: int | None = None,
                series=None, x_title: str | None = None) -> go.Figure:
    """Per group, the mean curve with a band (`std`: mean +- one standard deviation, `minmax`: range).

    Single-run groups are plain lines. Members are interpolated on a common grid of the range all cover.
    Colours: the architecture's when the groups have distinct architectures (or `colour_by_arch`), else
    one colour per group.
    """
    if band not in ("std", "minmax", "none"):
        raise ValueError(f"band must be std, minmax or none (got {band!r})")
    archs = [g[1][0].spec.model.arch for g in groups]
    by_arch = colour_by_arch and len(set(archs)) == len(archs)
    fig = go.Figure()
    drawn = []
    for i, (label, members) in enumerate(groups):
        color = arch_color(archs[i]) if by_arch else family_color(i)
        dash = dataset_dash(members[0].spec.data.name)
        curves = [_series(r, metric, x, transform, series) for r in members]
        curves = [(cx, smooth(cy, smoothing)) for cx, cy in curves if len(cx)]
        if not curves:
            continue
        if len(curves) == 1:
            cx, cy = curves[0]
            idx = downsample(cy)
            fig.add_trace(go.Scatter(x=cx[idx], y=cy[idx], mode="lines", name=label,
                                     line={"color": color, "dash": dash, "width": 2.5},
                                     hovertemplate=f"%{{x:.4g}}, %{{y:.4g}}<br>{spec_hover(members[0].spec)}"
                                                   f"<extra>{label}</extra>"))
            drawn.append(cy)
            continue
        grid = common_grid(curves)
        values = interpolate_curves(curves, grid)
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0)
            if band == "std":
                lo, hi = mean - np.nanstd(values, axis=0), mean + np.nanstd(values, axis=0)
            else:
                lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        if band != "none":
            fig.add_trace(go.Scatter(x=grid, y=hi, mode="lines", line={"width": 0, "color": color}, meta="band",
                                     legendgroup=label, showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=grid, y=lo, mode="lines", line={"width": 0, "color": color}, meta="band",
                                     fill="tonexty", fillcolor=_hex_to_rgba(color, 0.18), legendgroup=label,
                                     showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=grid, y=mean, mode="lines", name=label, legendgroup=label,
                                 line={"color": color, "dash": dash, "width": 2.5},
                                 hovertemplate=f"%{{x:.4g}}, mean %{{y:.4g}}<extra>{label}</extra>"))
        drawn.append(mean)
    for y, text in references:
        reference_line(fig, y, text)
    if log_y is None:
        log_y = "loss" in metric and _positive(drawn)
    if not drawn:
        fig.add_annotation(text=f"no selected run has recorded {metric_label(metric)}", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 16, "color": "#666"})
    suffix = {"std": " (mean ± std over runs)", "minmax": " (mean, min–max over runs)", "none": ""}[band]
    layout(fig, title or f"Do the {metric_label(metric)} curves fall onto one another?", x_title or X_AXES[x],
           (y_title or metric_label(metric)) + (suffix if any(len(m) > 1 for _, m in groups) else ""),
           presentation=presentation, log_y=bool(log_y), height=height)
    fig.update_traces(line={"width": 0}, selector={"meta": "band"})  # presentation mode widens lines
    _legend_below_if_crowded(fig)
    return fig


def thumbnail(fig: go.Figure, height: int = 190) -> go.Figure:
    """A small copy of a figure for a card: no title or legend, tight margins, small fonts, sparse log ticks.

    Axis titles too long for a card axis are broken onto two lines; labels get a light background so a
    curve that passes behind one does not hide it.
    """
    small = go.Figure(fig)
    small.update_layout(title=None, showlegend=False, height=height, margin={"l": 44, "r": 10, "t": 22, "b": 34},
                        font={"size": 11})
    small.update_xaxes(title_font={"size": 11}, title_standoff=4)
    small.update_yaxes(title_font={"size": 11}, title_standoff=4)
    for axes, limit in ((small.select_xaxes(), 46), (small.select_yaxes(), 28)):
        for axis in axes:
            axis.title.text = _two_lines(axis.title.text, limit)
    small.update_annotations(font={"size": 10}, bgcolor="rgba(255,255,255,0.8)")
    seen = set()
    for ann in small.layout.annotations:  # one label per text (e.g. a line drawn for each of several runs)
        if ann.text in seen:
            ann.visible = False
        seen.add(ann.text)
    small.update_traces(textfont_size=9, selector={"type": "scatter"})
    for trace in small.data:  # long curves without their markers: a card shows their shape
        if trace.type == "scatter" and set(str(trace.mode).split("+")) == {"lines", "markers"} and \
                len(array(trace.y)) > 12:
            trace.mode = "lines"
    return log_ticks(small, small=True)


def _two_lines(text: str | None, limit: int) -> str | None:
    """The text broken at the space nearest its middle when it shows more than limit characters.

    Markup (<sub>, <sup>) counts as the characters it shows, and no break falls inside it.
    """
    if not text or "<br>" in text:
        return text
    shown = re.sub(r"<[^>]*>", "", text)
    if len(shown) <= limit:
        return text
    depth, spaces, seen = 0, [], 0
    for i, ch in enumerate(text):
        depth += (ch == "<") - (ch == ">")
        if depth == 0 and ch not in "<>":
            seen += 1
            if ch == " " and not re.search(r"<su[bp]>[^<]*$", text[:i]):
                spaces.append((i, seen))
    if not spaces:
        return text
    cut = min(spaces, key=lambda pair: abs(pair[1] - len(shown) / 2))[0]
    return text[:cut] + "<br>" + text[cut + 1:]


def _last_value(h: pd.DataFrame, c: str) -> float:
    return float(h[c].dropna().iloc[-1]) if c in h and h[c].notna().any() else float("nan")


def status_table(runs: Sequence) -> pd.DataFrame:
    """One row per run: key, label, status, steps done, final loss and accuracy, message."""
    labels = run_labels(runs)
    rows = []
    for run, label in zip(runs, labels, strict=True):
        h = run.history
        last = partial(_last_value, h)
        rows.append({"run": label, "key": run.spec.key(), "status": getattr(run, "status", ""),
                     "steps": int(h["step"].max()) if "step" in h and len(h) else 0,
                     "final loss": last("loss"), "final test acc": last("test_acc"),
                     "final sharpness": last("sharpness"), "message": getattr(run, "message", "")})
    return pd.DataFrame(rows)
