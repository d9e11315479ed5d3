"""One look everywhere: a colour per architecture, a dash per dataset, readable layouts.

UX rule: one colour per architecture and one dash per dataset across the whole app; hovering a curve
shows its run's spec; presentation mode makes fonts and lines larger for projectors.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import plotly.graph_objects as go

from ..data import display_name
from ..registry import ARCHITECTURES, DATASETS

ARCH_COLORS = dict(zip(ARCHITECTURES, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"), strict=False))
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid", "dash", "dot", "dashdot", "longdash")
DATASET_DASHES = dict(zip(DATASETS, _DASHES, strict=False))
PREDICTION_COLOR = "#222222"
SEQUENCE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#7f7f7f")
MAX_POINTS = 3000  # per trace sent to the browser


def arch_color(arch: str) -> str:
    return ARCH_COLORS.get(arch, "#7f7f7f")


def dataset_dash(dataset: str) -> str:
    return DATASET_DASHES.get(dataset, "solid") if not dataset.startswith("upload:") else "longdashdot"


def family_color(i: int) -> str:
    """Colour of the i-th member of a family (sweep axis value)."""
    return SEQUENCE[i % len(SEQUENCE)]


def downsample(y, max_points: int = MAX_POINTS) -> np.ndarray:
    """Sorted indices of at most max_points values of y that keep its shape: both endpoints and, in each
    of (max_points - 2) // 2 equal buckets between them, the minimum and the maximum.

    Every other point (an even stride) would erase a period-2 oscillation, the signature of the edge of
    stability; min and max per bucket keep its envelope (as tsdownsample's MinMax does, without the
    dependency). Non-finite values are gaps: a bucket with no finite value keeps its first point.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(1, n - 1, buckets + 1).astype(int)  # inner points 1 .. n-2, endpoints kept apart
    bucket = np.repeat(np.arange(buckets), np.diff(edges))
    inner = y[1:n - 1]
    finite = np.isfinite(inner)
    keep = [np.array([0, n - 1])]
    for values in (np.where(finite, inner, np.inf), np.where(finite, -inner, np.inf)):  # min, then max
        extreme = np.minimum.reduceat(values, edges[:-1] - 1)
        hits = np.flatnonzero(values == extreme[bucket])  # all-gap buckets: every point, so the first
        _, first = np.unique(bucket[hits], return_index=True)
        keep.append(1 + hits[first])
    return np.unique(np.concatenate(keep))


def spec_hover(spec) -> str:
    """Hover text for a run: architecture, dataset, optimiser and the numbers that distinguish runs."""
    m, d, o = spec.model, spec.data, spec.optim
    return (f"{m.arch} w={m.width} d={m.depth} {m.activation} {m.param}<br>{display_name(d.name)} n={d.n_train}<br>"
            f"{o.name} lr={o.lr:g} {o.loss} steps={o.steps} bs={o.batch_size or 'full'}<br>"
            f"seed={spec.seed} key={spec.key()}")


def layout(fig: go.Figure, title: str, x_title: str = "", y_title: str = "", presentation: bool = False,
           log_x: bool = False, log_y: bool = False, height: int | None = None) -> go.Figure:
    """Apply the house layout: question-style title, labelled axes, legend, larger in presentation mode."""
    base = 22 if presentation else 13
    fig.update_layout(
        title={"text": title, "font": {"size": base + 6}},
        font={"size": base},
        template="plotly_white",
        legend={"font": {"size": base - 1}},
        margin={"l": 60, "r": 20, "t": 60 + (10 if presentation else 0), "b": 50},
        height=height or (560 if presentation else 420),
        hoverlabel={"font_size": base - 1},
    )
    fig.update_xaxes(title_text=x_title, type="log" if log_x else None)
    fig.update_yaxes(title_text=y_title, type="log" if log_y else None)
    fig.update_annotations(bgcolor="rgba(255,255,255,0.75)", selector=lambda a: a.bgcolor is None)  # legible on data
    for axis in list(fig.select_xaxes()) + list(fig.select_yaxes()):
        if axis.matches:  # a shared axis of a subplot grid: its title is on the axis it matches
            axis.title.text = None
    if presentation:  # explicit axis fonts: the app's chart theme would otherwise keep its small ones
        fig.update_traces(line={"width": 4}, selector={"type": "scatter"})
        fig.update_xaxes(tickfont_size=base - 2, title_font_size=base)
        fig.update_yaxes(tickfont_size=base - 2, title_font_size=base)
        fig.update_annotations(font_size=base - 2)
        plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
        below = (3.2 * base + 10) / max(plot_px, 1.0)  # under the tick labels and the x title
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -below, "x": 0})  # plot keeps its width
    return log_ticks(log_axis_annotations(fig))


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def tick_text(value: float) -> str:
    """A log-axis label: plain between 0.001 and 10,000 ('0.02', '5000'), else a power ('10⁻⁵', '2×10⁶')."""
    if 1e-3 <= value < 1e4:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0**exponent)
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if mantissa == 1 else f"{mantissa}×{power}"


def array(values):
    """A trace's data as a numpy array (also a typed array {'bdata', 'dtype'} of a figure read from JSON)."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values if values is not None else [])


def _axis_values(fig: go.Figure, letter: str, axis_id: str) -> np.ndarray:
    """Positive finite data values drawn on one axis (traces, and the lines of add_hline/add_vline)."""
    parts = []
    for trace in fig.data:
        if (getattr(trace, f"{letter}axis", None) or letter) != axis_id:
            continue
        try:
            parts.append(np.asarray(array(getattr(trace, letter)), dtype=float).ravel())
        except (TypeError, ValueError):  # categories, or no values on this axis
            continue
    for shape in fig.layout.shapes:
        if getattr(shape, f"{letter}ref") == axis_id:
            parts.append(np.array([getattr(shape, f"{letter}0"), getattr(shape, f"{letter}1")], dtype=float))
    values = np.concatenate(parts) if parts else np.array([])
    return values[np.isfinite(values) & (values > 0)]


def log_ticks(fig: go.Figure, small: bool = False) -> go.Figure:
    """Label log axes at decades, adding 2 and 5 where the axis spans few decades.

    Plotly's own choice on a short log axis labels every minor tick with a bare digit ('2 3 4 ... 9 1').
    Here an axis spanning more than 2.5 decades (1.5 when `small`, for cards) is labelled at decades
    only (every second or third decade when many), a shorter one at 1, 2 and 5 times each decade, and
    one spanning under half a decade is left to Plotly (which then labels it like a linear axis).
    """
    for letter, axes in (("x", fig.select_xaxes()), ("y", fig.select_yaxes())):
        for axis in axes:
            if axis.type != "log":
                continue
            axis_id = letter + axis.plotly_name[5:]
            if axis.range is not None and None not in axis.range:
                lo, hi = sorted(10.0 ** np.asarray(axis.range, dtype=float))
            else:
                values = _axis_values(fig, letter, axis_id)
                if not len(values):
                    continue
                lo, hi = values.min(), values.max()
            span = math.log10(hi / lo)
            if span < 0.5:
                continue
            first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
            if span > (1.5 if small else 2.5):
                step = max(1, math.ceil(span / (4 if small else 7)))
                ticks = [10.0**e for e in range(first - first % step, last + 1, step)]
            else:
                ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
            axis.update(tickmode="array", tickvals=ticks, ticktext=[tick_text(t) for t in ticks])
    return fig


_ON_LOG_AXIS = "log-axis position"  # marks an annotation whose data coordinate is already log10


def log_axis_annotations(fig: go.Figure) -> go.Figure:
    """Put annotations that sit on log axes where they belong.

    Plotly places shapes on a log axis by data value but annotations by log10 of it, so the label
    that `add_vline(x=200, annotation_text=...)` adds on a log x axis lands at 10^200 (and stretches
    the axis to reach it). Each such coordinate is converted once (marked); call after the axis
    types are set and the annotated lines added -- `layout` does.
    """
    for ann in fig.layout.annotations:
        if ann.name == _ON_LOG_AXIS:
            continue
        moved = False
        for letter in ("x", "y"):
            ref, value = getattr(ann, f"{letter}ref"), getattr(ann, letter)
            if not ref or " " in ref or ref == "paper" or not isinstance(value, (int, float)):
                continue
            axis = fig.layout[f"{letter}axis{ref[1:]}"]
            if axis.type == "log" and value > 0:
                setattr(ann, letter, math.log10(value))
                moved = True
        if moved:
            ann.name = _ON_LOG_AXIS
    return fig


def reference_line(fig: go.Figure, y: float, label: str, row=None, col=None) -> None:
    """Horizontal prediction line (e.g. 2/eta), drawn in the prediction colour with its label."""
    fig.add_hline(y=y, line_dash="dash", line_color=PREDICTION_COLOR, annotation_text=label,
                  annotation_position="top left", row=row, col=col)


UNCERTIFIED_NAME = "hollow: not certified (eigensolver stopped before its tolerance)"


def uncertified(history, column: str):
    """Boolean mask of the history rows whose `column` its instrument did not certify (`<column>_converged` 0)."""
    flag = f"{column}_converged"
    if flag not in history:
        return np.zeros(len(history), dtype=bool)
    return (history[flag].to_numpy(dtype=float) == 0.0)


def uncertified_trace(x, y, color: str, legendgroup: str | None = None, show_legend: bool = True) -> go.Scatter:
    """Hollow markers over the points a run's instrument did not certify."""
    return go.Scatter(x=x, y=y, mode="markers", name=UNCERTIFIED_NAME, legendgroup=legendgroup,
                      showlegend=show_legend, hoverinfo="x+y+name",
                      marker={"symbol": "circle-open", "size": 11, "color": color, "line": {"width": 2}})
