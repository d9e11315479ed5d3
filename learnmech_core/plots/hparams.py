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
            if len(ticks) > 8:
                ticks = np.arange(np.floor(np.nanmin(logs)), np.ceil(np.nanmax(logs)) + 1)
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


def hparams_scatter_figure(table: pd.DataFrame, x: str, metric: str, group: str | None = None,
                           presentation: bool = False, height: int | None = None) -> go.Figure:
    """`metric` against setting `x`, one colour and line per value of `group` (e.g. loss vs lr per width)."""
    for name in (x, metric, *([group] if group else [])):
        if name not in table:
            raise ValueError(f"{name!r} is not a column of the table")
    fig = go.Figure()
    parts = table.groupby(group, sort=True) if group else [(None, table)]
    numeric_x = is_numeric(table[x])
    hover_cols = [c for c in table.columns if c not in (x, metric) and not c.endswith("_std")][:12]
    for i, (value, part) in enumerate(parts):
        part = part.sort_values(x) if numeric_x else part
        ys = pd.to_numeric(part[metric], errors="coerce")
        err = part.get(f"{metric}_std")
        bars = {"type": "data", "array": err.fillna(0).to_numpy(float), "visible": True} if err is not None else None
        text = ["<br>".join(f"{c}={row[c]}" for c in hover_cols) for _, row in part.iterrows()]
        fig.add_trace(go.Scatter(
            x=part[x], y=ys, mode="lines+markers" if group and numeric_x else "markers",
            name=f"{group}={value}" if group else label(metric),
            error_y=bars,
            line={"color": SEQUENCE[i % len(SEQUENCE)], "width": 2}, marker={"size": 9},
            text=text, hovertemplate=f"{x}=%{{x}}<br>{label(metric)}=%{{y:.4g}}<br>%{{text}}<extra></extra>"))
    values = pd.to_numeric(table[metric], errors="coerce")
    title = f"How does the {label(metric)} depend on {x}?"
    return layout(fig, title, x + (" (log)" if numeric_x and log_scaled(table[x]) else ""),
                  label(metric) + (" (log)" if log_scaled(values) else ""), presentation=presentation,
                  log_x=numeric_x and log_scaled(table[x]), log_y=log_scaled(values), height=height)
