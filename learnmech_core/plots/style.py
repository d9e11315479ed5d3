"""One look everywhere: a colour per architecture, a dash per dataset, readable layouts.

UX rule: one colour per architecture and one dash per dataset across the whole app; hovering a curve
shows its run's spec; presentation mode makes fonts and lines larger for projectors.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..data import display_name
from ..registry import ARCHITECTURES, DATASETS

ARCH_COLORS = dict(zip(ARCHITECTURES, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")))
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid", "dash", "dot", "dashdot", "longdash")
DATASET_DASHES = dict(zip(DATASETS, _DASHES))
PREDICTION_COLOR = "#222222"
SEQUENCE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
MAX_POINTS = 3000  # per trace sent to the browser


def arch_color(arch: str) -> str:
    return ARCH_COLORS.get(arch, "#7f7f7f")


def dataset_dash(dataset: str) -> str:
    return DATASET_DASHES.get(dataset, "solid") if not dataset.startswith("upload:") else "longdashdot"


def family_color(i: int) -> str:
    """Colour of the i-th member of a family (sweep axis value)."""
    return SEQUENCE[i % len(SEQUENCE)]


def downsample(n: int, max_points: int = MAX_POINTS):
    """Indices (a slice) keeping at most max_points of n evenly, always keeping the last."""
    if n <= max_points:
        return slice(None)
    step = -(-n // max_points)
    return slice(None, None, step)


def spec_hover(spec) -> str:
    """Hover text for a run: architecture, dataset, optimiser and the numbers that distinguish runs."""
    m, d, o = spec.model, spec.data, spec.optim
    return (f"{m.arch} w={m.width} d={m.depth} {m.activation} {m.param}<br>{display_name(d.name)} n={d.n_train}<br>"
            f"{o.name} lr={o.lr:g} {o.loss} steps={o.steps} bs={o.batch_size or 'full'}<br>seed={spec.seed} key={spec.key()}")


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
    if presentation:
        fig.update_traces(line={"width": 4}, selector={"type": "scatter"})
    return log_axis_annotations(fig)


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
