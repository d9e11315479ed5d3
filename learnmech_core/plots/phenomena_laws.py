"""Figures of the macroscopic-law and universal-behaviour phenomena, each with its prediction drawn in.

Critical batch size, scaling law and loss-curve collapse, neural collapse, grokking, heavy-tailed
weight spectra and representation convergence. Builders take runs (and the verdict for the fitted
numbers) and return `go.Figure`s: one colour per architecture, one dash per dataset, the theory's
prediction in the prediction colour.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import PREDICTION_COLOR, arch_color, dataset_dash, downsample, family_color, layout, reference_line, spec_hover


def _line(run, name: str, x, y, opacity: float = 1.0, color: str | None = None, dash: str | None = None,
          showlegend: bool = True, width: float | None = None, mode: str = "lines") -> go.Scatter:
    """One run's curve in the house style (colour by architecture, dash by dataset, spec on hover)."""
    s = run.spec
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = downsample(len(x))
    return go.Scatter(x=x[keep], y=y[keep], mode=mode, name=name, opacity=opacity, showlegend=showlegend,
                      line={"color": color or arch_color(s.model.arch), "dash": dash or dataset_dash(s.data.name),
                            **({"width": width} if width else {})},
                      hovertext=spec_hover(s), hoverinfo="x+y+text")


def _rows(verdict) -> dict:
    """Per-run verdict rows by run key."""
    return {r["key"]: r for r in (verdict.per_run if verdict is not None else [])}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


# ------------------------------------------------------------------------------------------------
# grokking


def grokking_accuracy(runs, verdict=None, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Train (faint) and test accuracy against steps, or steps / step at 99% train accuracy."""
    from ..phenomena.grokking import RATIO_MIN, first_step

    fig = go.Figure()
    for run in runs:
        h = run.history.dropna(subset=["test_acc"])
        if not len(h):
            continue
        s_train = first_step(run.history, "train_acc", 0.99)
        scale = s_train if normalised and _finite(s_train) and s_train > 0 else 1.0
        x = np.maximum(h["step"].to_numpy(dtype=float), 1.0) / scale
        label = f"{run.spec.model.arch} seed {run.spec.seed}"
        fig.add_trace(_line(run, f"{label} train", x, h["train_acc"], opacity=0.45))
        fig.add_trace(_line(run, f"{label} test", x, h["test_acc"]))
        if not normalised and _finite(s_train):
            fig.add_vline(x=max(s_train, 1.0) * RATIO_MIN, line_dash="dot", line_color=PREDICTION_COLOR)
    if normalised:
        fig.add_vline(x=RATIO_MIN, line_dash="dash", line_color=PREDICTION_COLOR,
                      annotation_text=f"predicted: test 90% after \u2265 {RATIO_MIN:g}x", annotation_position="top left")
    reference_line(fig, 0.9, "90% test")
    x_title = "steps / step at 99% train accuracy" if normalised else "step (dotted: 5x the 99%-train step)"
    return layout(fig, "Does test accuracy jump long after the training set is memorised?", x_title, "accuracy",
                  presentation, log_x=True)


def grokking_fourier(runs, presentation: bool = False) -> go.Figure:
    """Fourier concentration of the first layer (left) and parameter norm (right) against steps."""
    from ..phenomena.grokking import first_step, random_concentration

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for run in runs:
        h = run.history
        label = f"{run.spec.model.arch} seed {run.spec.seed}"
        if "fourier_concentration" in h:
            f = h.dropna(subset=["fourier_concentration"])
            fig.add_trace(_line(run, f"{label} Fourier concentration", np.maximum(f["step"], 1), f["fourier_concentration"],
                                mode="lines+markers"), secondary_y=False)
        if "param_norm" in h:
            n = h.dropna(subset=["param_norm"])
            fig.add_trace(_line(run, f"{label} parameter norm", np.maximum(n["step"], 1), n["param_norm"],
                                opacity=0.45, dash="dot"), secondary_y=True)
        s_test = first_step(h, "test_acc", 0.9)
        if _finite(s_test):
            fig.add_vline(x=max(s_test, 1.0), line_dash="dash", line_color=arch_color(run.spec.model.arch),
                          annotation_text="test 90%", annotation_position="bottom right")
        fig.add_hline(y=random_concentration(run.spec.data.modulus), line_dash="dash", line_color=PREDICTION_COLOR,
                      annotation_text="random weights", annotation_position="top left")
    layout(fig, "Does the first layer become sparse in the Fourier basis when test accuracy jumps?", "step",
           "power in each neuron's top frequency", presentation, log_x=True)
    fig.update_yaxes(title_text="parameter norm ||theta||", secondary_y=True)
    fig.update_yaxes(range=[0, 1.05], secondary_y=False)
    return fig


def grokking_spectrum(runs, presentation: bool = False) -> go.Figure:
    """Fourier power of the first layer per frequency, at initialisation and at the end (log scale)."""
    fig = go.Figure()
    for run in runs:
        sp = run.spectra
        sp = sp[sp["kind"] == "fourier_power"] if len(sp) else sp
        if not len(sp):
            continue
        for step, opacity, when in ((sp["step"].min(), 0.4, "init"), (sp["step"].max(), 1.0, "final")):
            rows = sp[sp["step"] == step].sort_values("index")
            rows = rows[rows["index"] > 0]
            fig.add_trace(go.Bar(x=rows["index"], y=rows["value"], opacity=opacity,
                                 name=f"{run.spec.model.arch} seed {run.spec.seed} {when} (step {int(step)})",
                                 marker_color=arch_color(run.spec.model.arch), hovertext=spec_hover(run.spec)))
    fig.update_layout(barmode="group")
    return layout(fig, "Which frequencies does the network use after grokking?", "frequency k (of p)",
                  "Fourier power of first-layer weights", presentation, log_y=True)
