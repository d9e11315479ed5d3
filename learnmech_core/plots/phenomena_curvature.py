"""Figures of the curvature phenomena: edge of stability (plain and adaptive), progressive sharpening,
catapult phase diagram and Hessian outliers, each with the theory's prediction drawn in.

Runs (and verdicts) in, `go.Figure` out; one colour per architecture, one dash per dataset, the
prediction in the prediction colour, the run's spec on hover. `normalised` switches raw axes (step,
sharpness, loss) to the universality normalisations (`universality.normalise`).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ..data import display_name
from ..universality import KINDS, normalise, stability_threshold
from .style import (
    PREDICTION_COLOR,
    UNCERTIFIED_NAME,
    arch_color,
    dataset_dash,
    downsample,
    family_color,
    layout,
    reference_line,
    spec_hover,
    uncertified,
    uncertified_trace,
)

Y_CLIP = 3.0  # normalised sharpness axes stop here (the first steps of Adam can reach 100x the threshold)
LOSS_CLIP = 1e3  # loss axes stop at this multiple of the initial loss (diverged runs leave the chart)
_SYMBOLS = {"digits": "circle", "gaussian_mixture": "diamond", "mnist": "square", "fashion_mnist": "cross",
            "cifar10": "triangle-up"}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating)) and math.isfinite(float(x))


def run_label(spec) -> str:
    """Legend label of a run: architecture, activation, dataset, loss, optimiser rate."""
    m, d, o = spec.model, spec.data, spec.optim
    return f"{m.arch} {m.activation} · {display_name(d.name)} · {o.loss} · η={o.lr:g}"


def _line(run, name: str, x, y, opacity: float = 1.0, width: float | None = None, mode: str = "lines",
          color: str | None = None) -> go.Scatter:
    """One run's curve: colour by architecture, dash by dataset, spec on hover, downsampled."""
    s = run.spec
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = downsample(y)
    return go.Scatter(x=x[keep], y=y[keep], mode=mode, name=name, opacity=opacity,
                      line={"color": color or arch_color(s.model.arch), "dash": dataset_dash(s.data.name),
                            **({"width": width} if width else {})},
                      hovertext=spec_hover(s), hoverinfo="x+y+text")


def _opacity(spec) -> float:
    """ReLU variants are drawn fainter, so two MLPs of one colour stay apart."""
    return 0.6 if spec.model.activation == "relu" else 1.0


def sharpness_overlay(runs, kind: str = "sharpness", normalised: bool = True, presentation: bool = False,
                      title: str | None = None) -> go.Figure:
    """Sharpness (or Adam's preconditioned sharpness) against time, with the stability threshold drawn.

    Normalised: value / threshold against eta x step, prediction the line at 1. Raw: value against step
    (log y), one dashed threshold line per learning rate.
    """
    info = KINDS[kind]
    fig = go.Figure()
    thresholds = {}
    for run in runs:
        if info.column not in run.history or not len(run.history):
            continue
        table = normalise(run.history, run.spec, kind)
        if not len(table):
            continue
        x, y = (table["x_norm"], table["y_norm"]) if normalised else (table["x"], table["y"])
        fig.add_trace(_line(run, run_label(run.spec), x, y, opacity=_opacity(run.spec), mode="lines+markers"))
        flags = uncertified(run.history, info.column)
        if flags.any():
            mask = np.isin(table["step"].to_numpy(), run.history["step"].to_numpy()[flags])
            fig.add_trace(uncertified_trace(np.asarray(x)[mask], np.asarray(y)[mask], arch_color(run.spec.model.arch),
                                            show_legend=not any(t.name == UNCERTIFIED_NAME for t in fig.data)))
        thresholds[run.spec.optim.lr] = stability_threshold(run.spec)
    name = "2/\u03b7" if kind == "sharpness" else "(2+2\u03b2\u2081)/((1-\u03b2\u2081)\u03b7)"
    if normalised:
        reference_line(fig, 1.0, f"prediction: {name}")
    else:
        for lr, value in sorted(thresholds.items()):
            reference_line(fig, value, f"{name} = {value:.3g} (\u03b7={lr:g})")
    default = "Does sharpness stop at 2/\u03b7?" if kind == "sharpness" else \
        "Does Adam's preconditioned sharpness stop at 38/\u03b7?"
    y_title = info.y_norm_label if normalised else info.y_label
    peak = max((float(np.nanmax(t.y)) for t in fig.data if t.y is not None and len(t.y)), default=0.0)
    if normalised and peak > Y_CLIP:
        y_title += f" (axis cut at {Y_CLIP:g}; early transients above)"
    layout(fig, title or default, info.x_norm_label if normalised else info.x_label, y_title, presentation,
           log_y=not normalised)
    if normalised and peak > Y_CLIP:
        fig.update_yaxes(range=[0, Y_CLIP])
    return fig


def loss_overlay(runs, normalised: bool = True, presentation: bool = False, title: str | None = None) -> go.Figure:
    """Training loss (log scale) against step, or loss / initial loss against eta x step."""
    info = KINDS["loss_initial"]
    fig = go.Figure()
    initial = []
    for run in runs:
        if "loss" not in run.history or not len(run.history):
            continue
        table = normalise(run.history, run.spec, "loss_initial")
        if len(table):
            initial.append(float(table["y"].iloc[0]))
        x, y = (table["x_norm"], table["y_norm"]) if normalised else (table["x"], table["y"])
        fig.add_trace(_line(run, run_label(run.spec), x, y, opacity=_opacity(run.spec)))
    if normalised:
        reference_line(fig, 1.0, "initial loss (prediction: falls below it, not monotonically)")
    elif initial:
        reference_line(fig, max(initial), "highest initial loss (prediction: every run ends below its own)")
    return layout(fig, title or "Does the loss keep falling at the edge of stability, even though not monotonically?",
                  info.x_norm_label if normalised else info.x_label,
                  info.y_norm_label if normalised else info.y_label, presentation, log_y=True)


def ratio_summary(verdict, y_title: str, title: str, tolerance: float, presentation: bool = False,
                  expected: float = 1.0) -> go.Figure:
    """Each run's measured ratio as a marker (colour: architecture, symbol: dataset) in the predicted band."""
    fig = go.Figure()
    rows = verdict.per_run if verdict is not None else []
    for r in rows:
        if r.get("measured") is None:
            continue
        fig.add_trace(go.Scatter(
            x=[r.get("label", r["key"])], y=[r["measured"]], mode="markers", showlegend=False,
            marker={"color": arch_color(r["arch"]), "symbol": _SYMBOLS.get(r["dataset"], "circle"),
                    "size": 16 if presentation else 11, "line": {"width": 1, "color": "#333"}},
            hovertext=f"{r.get('label', '')}<br>measured {r['measured']:.3f}<br>{'holds' if r['passed'] else 'fails'}",
            hoverinfo="text"))
    fig.add_hrect(y0=expected - tolerance, y1=expected + tolerance, fillcolor=PREDICTION_COLOR, opacity=0.08,
                  line_width=0)
    reference_line(fig, expected, f"prediction {expected:g} \u00b1 {tolerance:g}")
    if verdict is not None and _finite(verdict.measured):
        fig.add_hline(y=verdict.measured, line_dash="dot", line_color="#888",
                      annotation_text=f"median {verdict.measured:.3f}", annotation_position="bottom right")
    return layout(fig, title, "run", y_title, presentation)


def sharpening_curves(runs, verdict=None, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Sharpness against time below 2/eta: raw (step, sharpness) or (eta x step, sharpness / initial sharpness)."""
    rows = {r["key"]: r for r in (verdict.per_run if verdict is not None else [])}
    fig = go.Figure()
    for run in runs:
        if "sharpness" not in run.history:
            continue
        table = normalise(run.history, run.spec, "sharpness")
        if not len(table):
            continue
        first = float(table["y"].iloc[0])
        if normalised:
            x, y = table["x_norm"], table["y"] / first if first > 0 else table["y"]
        else:
            x, y = table["x"], table["y"]
        rho = rows.get(run.spec.key(), {}).get("measured")
        m = run.spec.model
        name = run_label(run.spec) + f" w={m.width} d={m.depth}" + (f" (\u03c1={rho:.2f})" if _finite(rho) else "")
        fig.add_trace(_line(run, name, x, y, opacity=_opacity(run.spec), mode="lines+markers"))
        if not normalised:
            reference_line(fig, stability_threshold(run.spec),
                           f"2/\u03b7 (\u03b7={run.spec.optim.lr:g}): never reached")
    if normalised:
        reference_line(fig, 1.0, "initial sharpness (prediction: rises above it)")
    return layout(fig, "Does sharpness keep rising while \u03b7 is too small to reach 2/\u03b7?",
                  "\u03b7 \u00d7 step" if normalised else "step",
                  "sharpness / initial sharpness" if normalised else "sharpness (top Hessian eigenvalue)",
                  presentation, log_y=not normalised)


def sharpening_strengths(verdict, presentation: bool = False) -> go.Figure:
    """Growth of the sharpness S_final / S(10%) per run (colour: architecture), 1 = no sharpening."""
    fig = go.Figure()
    for r in (verdict.per_run if verdict is not None else []):
        if not _finite(r.get("strength")):
            continue
        name = f"{r.get('label', r['key'])} w={r.get('width')} d={r.get('depth')}"
        fig.add_trace(go.Bar(x=[name], y=[r["strength"]], showlegend=False, marker_color=arch_color(r["arch"]),
                             marker_pattern_shape="" if r.get("tested", True) else "/",
                             text=[f"ρ={r['rho']:.2f}" if _finite(r.get("rho")) else ""], textposition="outside",
                             hovertext=f"{name}<br>S_final/S(10%) = {r['strength']:.3f}", hoverinfo="text"))
    reference_line(fig, 1.0, "no sharpening (prediction: above)")
    layout(fig, "How much does each network sharpen?", "run", "growth S<sub>end</sub>/S<sub>10%</sub>", presentation)
    top = max((float(t.y[0]) for t in fig.data if t.y is not None and len(t.y)), default=0.0)
    if top > 0:  # room above the tallest bar for its label
        fig.update_yaxes(range=[0, 1.15 * top])
    return fig


def sharpening_pairs(pairs: list[dict], presentation: bool = False) -> go.Figure:
    """Matched pairs side by side: the growth S_final / S(10%) of the member predicted to sharpen more (narrower,
    deeper, MSE) and of the other one. `pairs`: dicts with comparison, more, other, more_label, other_label, ratio
    (strengths None where a member was left out)."""
    fig = go.Figure()
    x = [f"{p['comparison']}<br>(ratio {p['ratio']:.2f})" if _finite(p.get("ratio")) else
         f"{p['comparison']}<br>(a member left out)" for p in pairs]
    for role, name, colour in (("more", "predicted to sharpen more", PREDICTION_COLOR), ("other", "the other", "#888")):
        fig.add_trace(go.Bar(x=x, y=[p[role] if _finite(p[role]) else 0.0 for p in pairs], name=name,
                             marker_color=colour, hovertext=[p[f"{role}_label"] for p in pairs],
                             hoverinfo="text+y"))
    reference_line(fig, 1.0, "no sharpening")
    layout(fig, "Do narrower, deeper and MSE networks sharpen more than their pair?", "matched pair",
           "growth S<sub>end</sub>/S<sub>10%</sub>", presentation)
    fig.update_layout(barmode="group")
    return fig


_PHASES = ("lazy", "catapult", "diverged")  # coloured in this order in both catapult figures


def catapult_phase_diagram(verdict, presentation: bool = False) -> go.Figure:
    """Phase of each run (colour) against eta x lambda_0 / 2, one row per set-up, on the predicted phases.

    The predicted phases are shaded bands (lazy below 1, catapult between 1 and the two-layer linear
    model's 2, divergence above); the measured boundaries are thin grey lines.
    """
    fig = go.Figure()
    rows = verdict.per_run if verdict is not None else []
    phases = _PHASES
    colours = {p: family_color(i) for i, p in enumerate(phases)}
    for phase in phases:
        pts = [r for r in rows if r.get("phase") == phase and _finite(r.get("c"))]
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[r["c"] for r in pts], y=[_setup(r) for r in pts], mode="markers", name=phase,
            marker={"color": colours[phase], "size": 14 if presentation else 10, "opacity": 0.85,
                    "line": {"width": 1.5, "color": [arch_color(r["arch"]) for r in pts]}},
            hovertext=[f"{r.get('label', '')}<br>\u03b7\u03bb\u2080/2 = {r['c']:.2f}<br>loss peak / initial "
                       f"{r.get('spike', float('nan')):.3g}<br>final sharpness \u00d7 \u03b7/2 "
                       f"{r.get('final_ratio', float('nan')):.3g}<br>initial sharpness \u03bb\u2080 "
                       f"{r.get('lambda0', float('nan')):.3g}" for r in pts], hoverinfo="text"))
    cs = [r["c"] for r in rows if _finite(r.get("c")) and r["c"] > 0]
    lo, hi = (min(cs + [1.0]) / 1.3, max(cs + [2.0]) * 1.3)
    for (x0, x1), phase in zip(((lo, 1.0), (1.0, 2.0), (2.0, hi)), phases, strict=True):
        fig.add_vrect(x0=x0, x1=x1, fillcolor=colours[phase], opacity=0.08, line_width=0, layer="below",
                      annotation_text="diverges" if phase == "diverged" else phase,
                      annotation_position="top left", annotation_font_color=colours[phase])
    if verdict is not None:
        # the judged boundaries: the first one, and the linear model's eta_max where it was measured
        second = "linear_eta_max" if _finite(verdict.details.get("linear_eta_max")) else "boundary_catapult_diverged"
        for name, where in (("boundary_lazy_catapult", "bottom left"), (second, "bottom right")):
            value = verdict.details.get(name)
            if _finite(value):
                fig.add_vline(x=value, line_dash="dot", line_color="#666", line_width=1.5,
                              annotation_text=f"{value:.2f}", annotation_position=where)
    fig.update_xaxes(range=[math.log10(lo), math.log10(hi)])
    fig.update_yaxes(range=[-0.6, len({_setup(r) for r in rows}) - 0.4])
    fig.update_layout(legend_title_text="measured phase")
    return layout(fig, "Does a large learning rate catapult the network into a flatter region?",
                  "\u03b7\u03bb\u2080/2 (shaded: predicted phases; dotted: measured edges)", "architecture",
                  presentation, log_x=True)


def _setup(row: dict) -> str:
    """A set-up's row label: its architecture (the catapult grid varies architectures on one dataset)."""
    return str(row.get("arch", "")).replace("_", " ")


def catapult_curves(runs, verdict=None, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Loss (log) against step for each rate of the sweep, coloured by measured phase as in the phase diagram:
    lazy runs fall, catapult runs spike first (the rate of each curve is in its hover text)."""
    rows = {r["key"]: r for r in (verdict.per_run if verdict is not None else [])}
    fig = go.Figure()
    initial: list[float] = []
    shown: set[str] = set()
    for run in runs:
        h = run.history.dropna(subset=["loss"]) if "loss" in run.history else run.history
        if not len(h):
            continue
        r = rows.get(run.spec.key(), {})
        c = r.get("c")
        y = h["loss"] / h["loss"].iloc[0] if normalised else h["loss"]
        if not normalised and float(h["loss"].iloc[0]) not in initial:
            initial.append(float(h["loss"].iloc[0]))
        phase = r.get("phase", "")
        name = f"{run.spec.model.arch}, {phase or 'phase unknown'}"  # one legend entry per set-up and phase
        label = f"\u03b7\u03bb\u2080/2 = {c:.2f}" if _finite(c) else f"\u03b7={run.spec.optim.lr:g}"
        trace = _line(run, name, h["step"], y, color=family_color(_PHASES.index(phase) if phase in _PHASES else 3))
        trace.update(legendgroup=name, showlegend=name not in shown, hovertext=f"{label}<br>{trace.hovertext}")
        shown.add(name)
        fig.add_trace(trace)
    if normalised:
        reference_line(fig, 1.0, "initial loss: catapult runs rise above it, then fall")
    else:
        for level in sorted(initial):
            reference_line(fig, level, "initial loss: catapult runs rise above it, then fall")
    layout(fig, "Does the loss spike and then fall when \u03b7 > 2/\u03bb\u2080?", "step",
           ("loss / initial loss" if normalised else "training loss") + " (diverged runs leave the chart)",
           presentation, log_y=True)
    low = min((float(np.nanmin(t.y)) for t in fig.data if t.y is not None and len(t.y)), default=1.0)
    top = LOSS_CLIP * (1.0 if normalised else max(initial, default=1.0))
    if low > 0 and top > low:
        fig.update_yaxes(range=[math.log10(low) - 0.1, math.log10(top)])
    return fig


def _last_values(spectra, kind: str) -> np.ndarray:
    """A spectra kind's values at its last recorded step, by index."""
    sp = spectra[spectra["kind"] == kind] if len(spectra) else spectra
    if not len(sp):
        return np.array([])
    return sp[sp["step"] == sp["step"].max()].sort_values("index")["value"].to_numpy(dtype=float)


def hessian_topk(runs, verdict=None, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Top-2C Hessian eigenvalues (log scale) by rank, the predicted gap after rank C marked.

    Where a run carries the Gauss-Newton split (spectra rows `gn_*`), G's top eigenvalues are drawn as
    open markers over H's; hover gives v\u1d40Gv/\u03bb of H's direction of that rank.
    """
    rows = {r["key"]: r for r in (verdict.per_run if verdict is not None else [])}
    fig = go.Figure()
    classes, rings = set(), []
    for i, run in enumerate(runs):
        values = np.abs(_last_values(run.spectra, "hessian_topk"))
        if not len(values):
            continue
        r = rows.get(run.spec.key(), {})
        n_classes = r.get("classes")
        rank = np.arange(1, len(values) + 1, dtype=float)
        x = rank / n_classes if normalised and n_classes else rank
        y = values / values[0] if normalised and values[0] > 0 else values
        if n_classes:
            classes.add(n_classes)
        name = f"{run.spec.model.arch} · {display_name(run.spec.data.name)} · C={n_classes}" + \
            (f" (gap at {r['gap_rank']})" if r.get("gap_rank") else "")
        share = r.get("gn_share_min")
        if _finite(share):  # a lower bound, so rounded down
            name += f" · G carries \u2265 {math.floor(round(share * 1000, 6)) / 1000:.3f}"
        trace = _line(run, name, x, y, mode="lines+markers", opacity=0.55 + 0.45 * (i % 2))
        symbol = "circle" if (n_classes or 0) <= 5 else "diamond"
        trace.marker = {"symbol": symbol, "size": 9 if presentation else 6}
        fig.add_trace(trace)
        g, shares = _last_values(run.spectra, "gn_gauss_newton"), _last_values(run.spectra, "gn_share")
        if len(g) and values[0] > 0:
            gx = np.arange(1, len(g) + 1) / (n_classes if normalised and n_classes else 1)
            gy = np.abs(g) / values[0] if normalised else np.abs(g)
            hover = [f"G's eigenvalue {j + 1}: {v:.4g}" + (f"<br>v\u1d40Gv/\u03bb of H's direction {j + 1}: "
                                                          f"{shares[j]:.3f}" if j < len(shares) else "")
                     for j, v in enumerate(g)]
            rings.append(go.Scatter(
                x=gx, y=gy, mode="markers", legendgroup="gauss_newton", showlegend=not rings,
                name="Gauss-Newton term G's eigenvalues (open markers)", hovertext=hover, hoverinfo="text",
                marker={"symbol": f"{symbol}-open", "size": 14 if presentation else 11,
                        "color": arch_color(run.spec.model.arch), "line": {"width": 1.5}}))
    fig.add_traces(rings)  # over every run's line, one legend entry last
    if normalised:
        fig.add_vline(x=1.0, line_dash="dash", line_color=PREDICTION_COLOR,
                      annotation_text="\u2190 predicted: C\u22121 or C", annotation_position="top right")
    else:
        for c in sorted(classes):
            fig.add_vline(x=c + 0.5, line_dash="dash", line_color=PREDICTION_COLOR,
                          annotation_text=f"C = {c}", annotation_position="top right")
    return layout(fig, "Does the Hessian have C outliers above a bulk?",
                  "rank / number of classes C" if normalised else "rank",
                  "eigenvalue / largest" if normalised else "|Hessian eigenvalue|", presentation, log_y=True)
