"""Sweep figures: parallel coordinates of settings and final metrics, and a metric against one setting.

Input is a table from `hparams.hparams_table` (or `aggregate_seeds`): one row per run (or per group),
setting columns and metric columns. Numeric columns that are positive and span a factor of 10 or
more (learning rates, widths, losses) are drawn on log axes; text and boolean settings become
categories.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..hparams import is_numeric, log_scaled, nice_number
from .log_ticks import tidy_log_axis
from .style import SEQUENCE, layout

LABELS = {"final_loss": "final loss", "final_train_loss": "final train loss", "final_test_loss": "final test loss",
          "final_train_acc": "final train accuracy", "final_test_acc": "final test accuracy", "min_loss": "lowest loss",
          "final_sharpness": "final sharpness λ_max", "sharpness_ratio": "sharpness / stability threshold",
          "final_alpha": "final mean α", "steps_done": "steps done", "seeds": "seeds"}


def label(column: str) -> str:
    """Axis text of a column: metrics in words, settings by their field path."""
    return LABELS.get(column, column)


def _dimension(values: pd.Series, name: str) -> dict:
    """One parcoords axis: log10 for wide positive numbers, codes with labels for categories."""
    if is_numeric(values):
        a = values.to_numpy(dtype=float)
        if log_scaled(a):
            logs = np.log10(a)
            ticks = np.unique(np.round(logs[np.isfinite(logs)], 6))
            if len(ticks) > 6:  # 1-2-5 steps inside the range instead of every value
                lo, hi = np.nanmin(logs), np.nanmax(logs)
                steps = [d + np.log10(m) for d in range(int(np.floor(lo)), int(np.ceil(hi)) + 1) for m in (1, 2, 5)]
                ticks = np.array([t for t in steps if lo - 1e-9 <= t <= hi + 1e-9]) if hi - lo >= np.log10(5) else \
                    np.linspace(lo, hi, 5)
            return {"label": f"{label(name)} (log)", "values": logs, "tickvals": ticks,
                    "ticktext": [nice_number(10**t) for t in ticks]}
        return {"label": label(name), "values": a}
    text = values.astype(str)
    cats = list(dict.fromkeys(sorted(text)))
    codes = text.map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=float)
    return {"label": label(name), "values": codes, "tickvals": list(range(len(cats))), "ticktext": cats,
            "range": [-0.5, len(cats) - 0.5] if len(cats) == 1 else [0, len(cats) - 1]}


def parallel_coordinates_figure(table: pd.DataFrame, fields: Sequence[str], metrics: Sequence[str], color: str,
                                presentation: bool = False, height: int | None = None) -> go.Figure:
    """One line per row through every setting axis then every metric axis, coloured by `color` (a metric).

    Rows without a finite value of a shown metric are left out (the title says how many).
    """
    columns = [c for c in [*fields, *metrics] if c in table]
    if color not in table:
        raise ValueError(f"colour metric {color!r} is not a column of the table")
    shown = table
    for m in dict.fromkeys([*metrics, color]):
        if m in shown:
            shown = shown[np.isfinite(pd.to_numeric(shown[m], errors="coerce").to_numpy(dtype=float))]
    dropped = len(table) - len(shown)
    fig = go.Figure()
    title = "Which settings give the best outcome?"
    if dropped:
        title += f" ({dropped} run{'s' if dropped != 1 else ''} without every metric left out)"
    if not len(shown) or not columns:
        fig.add_annotation(text="no run has every metric", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return layout(fig, title, presentation=presentation, height=height)
    colour = _dimension(shown[color], color)
    fig.add_trace(go.Parcoords(
        line={"color": colour["values"], "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": colour["label"]}, "tickvals": colour.get("tickvals"),
                           "ticktext": colour.get("ticktext")}},
        dimensions=[_dimension(shown[c], c) for c in columns],
        labelfont={"size": 20 if presentation else 13}, tickfont={"size": 17 if presentation else 11},
    ))
    fig = layout(fig, title, presentation=presentation, height=height or (600 if presentation else 480))
    fig.update_layout(margin={"l": 80, "r": 80, "t": 110, "b": 40})
    return fig


def hparams_scatter_figure(table: pd.DataFrame, x: str, metric: str, group: str | Sequence[str] | None = None,
                           presentation: bool = False, height: int | None = None) -> go.Figure:
    """`metric` against setting `x`, one line per combination of the `group` settings (e.g. loss vs lr per width).

    The first group setting picks the colour, the others the dash, so lines of one width share a colour.
    """
    group = [group] if isinstance(group, str) else list(group or [])
    for name in (x, metric, *group):
        if name not in table:
            raise ValueError(f"{name!r} is not a column of the table")
    fig = go.Figure()
    numeric_x = is_numeric(table[x])
    colours = {v: SEQUENCE[i % len(SEQUENCE)] for i, v in enumerate(sorted(table[group[0]].unique()))} if group else {}
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    rest = list(dict.fromkeys(tuple(r) for r in table[group[1:]].itertuples(index=False))) if len(group) > 1 else []
    parts = table.groupby(group, sort=True) if group else [((), table)]
    hover_cols = [c for c in table.columns if c not in (x, metric) and not c.endswith("_std")][:12]
    for value, part in parts:
        value = value if isinstance(value, tuple) else (value,)
        part = part.sort_values(x) if numeric_x else part
        err = part.get(f"{metric}_std")
        bars = {"type": "data", "array": err.fillna(0).to_numpy(float), "visible": True} if err is not None else None
        text = ["<br>".join(f"{c}={row[c]}" for c in hover_cols) for _, row in part.iterrows()]
        colour = colours.get(value[0], SEQUENCE[0]) if group else SEQUENCE[0]
        dash = dashes[rest.index(tuple(value[1:])) % len(dashes)] if rest else "solid"
        fig.add_trace(go.Scatter(
            x=part[x], y=pd.to_numeric(part[metric], errors="coerce"),
            mode="lines+markers" if group and numeric_x else "markers",
            name=", ".join(f"{g}={v}" for g, v in zip(group, value, strict=True)) if group else label(metric),
            error_y=bars, line={"color": colour, "width": 2, "dash": dash}, marker={"size": 9}, text=text,
            hovertemplate=f"{x}=%{{x}}<br>{label(metric)}=%{{y:.4g}}<br>%{{text}}<extra></extra>"))
    values = pd.to_numeric(table[metric], errors="coerce")
    log_x, log_y = numeric_x and log_scaled(table[x]), log_scaled(values)
    fig = layout(fig, f"How does the {label(metric)} depend on {x}?", x + (" (log)" if log_x else ""),
                 label(metric) + (" (log)" if log_y else ""), presentation=presentation, log_x=log_x, log_y=log_y,
                 height=height)
    ticks = np.sort(table[x].unique()) if numeric_x else []
    if 0 < len(ticks) <= 12:  # label the swept values themselves (a log axis would label 2, 3, 5 ... between decades)
        fig.update_xaxes(tickvals=ticks, ticktext=[nice_number(float(t)) for t in ticks])
    return tidy_log_axis(fig, values) if log_y else fig
