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

from ..data import display_name
from .style import PREDICTION_COLOR, arch_color, dataset_dash, downsample, layout, reference_line, spec_hover


def _line(run, name: str, x, y, opacity: float = 1.0, color: str | None = None, dash: str | None = None,
          showlegend: bool = True, width: float | None = None, mode: str = "lines") -> go.Scatter:
    """One run's curve in the house style (colour by architecture, dash by dataset, spec on hover)."""
    s = run.spec
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = downsample(y)
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


def grokking_accuracy(runs, summaries: dict, ratio_min: float, normalised: bool = True,
                      presentation: bool = False) -> go.Figure:
    """Train (faint) and test accuracy against steps, or steps / step at 99% train accuracy (`summaries`: run key
    -> {"step_train_99": ...}); the predicted delay `ratio_min` marked."""
    fig = go.Figure()
    for run in runs:
        h = run.history.dropna(subset=["test_acc"])
        if not len(h):
            continue
        s_train = summaries.get(run.spec.key(), {}).get("step_train_99", float("nan"))
        scale = s_train if normalised and _finite(s_train) and s_train > 0 else 1.0
        x = np.maximum(h["step"].to_numpy(dtype=float), 1.0) / scale
        label = f"{run.spec.model.arch} seed {run.spec.seed}"
        fig.add_trace(_line(run, f"{label} train", x, h["train_acc"], opacity=0.45))
        fig.add_trace(_line(run, f"{label} test", x, h["test_acc"]))
        if not normalised and _finite(s_train):
            fig.add_vline(x=max(s_train, 1.0) * ratio_min, line_dash="dot", line_color=PREDICTION_COLOR)
    if normalised:
        fig.add_vline(x=ratio_min, line_dash="dash", line_color=PREDICTION_COLOR,
                      annotation_text=f"predicted: test 90% after \u2265 {ratio_min:g}x",
                      annotation_position="top left")
    reference_line(fig, 0.9, "90% test")
    x_title = ("steps / step at 99% train accuracy" if normalised
               else f"step (dotted: {ratio_min:g}x the 99%-train step)")
    return layout(fig, "Does test accuracy jump long after the training set is memorised?", x_title, "accuracy",
                  presentation, log_x=True)


def grokking_fourier(runs, summaries: dict, presentation: bool = False) -> go.Figure:
    """Fourier concentration of the first layer (left) and parameter norm (right) against steps (`summaries`: run
    key -> {"step_test_90", "random_concentration"}: the jump and the random-weights baseline)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for run in runs:
        h = run.history
        label = f"{run.spec.model.arch} seed {run.spec.seed}"
        if "fourier_concentration" in h:
            f = h.dropna(subset=["fourier_concentration"])
            fig.add_trace(_line(run, f"{label} Fourier concentration", np.maximum(f["step"], 1),
                                f["fourier_concentration"], mode="lines+markers"), secondary_y=False)
        if "param_norm" in h:
            n = h.dropna(subset=["param_norm"])
            fig.add_trace(_line(run, f"{label} parameter norm", np.maximum(n["step"], 1), n["param_norm"],
                                opacity=0.45, dash="dot"), secondary_y=True)
        mine = summaries.get(run.spec.key(), {})
        s_test = mine.get("step_test_90", float("nan"))
        if _finite(s_test):
            fig.add_vline(x=max(s_test, 1.0), line_dash="dash", line_color=arch_color(run.spec.model.arch),
                          annotation_text="test 90%", annotation_position="bottom right")
        if _finite(mine.get("random_concentration")):
            fig.add_hline(y=mine["random_concentration"], line_dash="dash", line_color=PREDICTION_COLOR,
                          annotation_text="random weights", annotation_position="top left")
    layout(fig, "Does the first layer become sparse in the Fourier basis when test accuracy jumps?", "step",
           "power in each neuron's top frequency", presentation, log_x=True)
    fig.update_yaxes(title_text="parameter norm \u2016\u03b8\u2016", secondary_y=True)
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


# ------------------------------------------------------------------------------------------------
# critical batch size


def _group_label(fit: dict) -> str:
    return f"{fit['arch']} / {fit['dataset']} seed {fit['seed']}"


def critical_tradeoff(fits: list[dict], normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Steps vs examples to the target, per batch size, with the hyperbola (S/S_min - 1)(E/E_min - 1) = 1.

    `fits`: one dict per (arch, dataset, seed) group from the phenomenon: "best_steps" (batch -> steps), "s_min",
    "e_min", "arch", "dataset", "seed".
    """
    fig = go.Figure()
    for fit in fits:
        if not _finite(fit["s_min"]):
            continue
        b = np.array(sorted(fit["best_steps"]), dtype=float)
        s = np.array([fit["best_steps"][int(v)] for v in b])
        e = s * b
        x, y = (e / fit["e_min"], s / fit["s_min"]) if normalised else (e, s)
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers+text", text=[f"{int(v)}" for v in b],
                                 textposition=["top right"] * (len(b) - 1) + ["top left"],
                                 name=f"{_group_label(fit)} (labels: batch size B)",
                                 marker={"color": arch_color(fit["arch"]), "size": 10},
                                 hovertext=[f"B={int(v)}: S={si:.3g}, E={ei:.4g}"
                                            for v, si, ei in zip(b, s, e, strict=True)]))
        u = np.geomspace(1.02, max(float(np.max(e / fit["e_min"])) * 1.5, 3.0), 200)
        curve_y = 1.0 + 1.0 / (u - 1.0)
        cx, cy = (u, curve_y) if normalised else (u * fit["e_min"], curve_y * fit["s_min"])
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines",
                                 name="prediction (S/S<sub>min</sub> \u2212 1)(E/E<sub>min</sub> \u2212 1) = 1",
                                 line={"color": PREDICTION_COLOR, "dash": dataset_dash(fit["dataset"])}))
    x_title = "examples to target / E<sub>min</sub>" if normalised else "examples processed to reach the target loss E"
    y_title = "steps to target / S<sub>min</sub>" if normalised else "steps to reach the target loss S"
    return layout(fig, "Do steps and examples to a target loss trade off along one hyperbola?", x_title, y_title,
                  presentation, log_x=True, log_y=True)


def critical_steps(fits: list[dict], presentation: bool = False) -> go.Figure:
    """Steps to target vs batch size (every learning rate faint, the best solid), the fit, B_crit and B_noise.

    `fits` as for `critical_tradeoff`, with "points" ((batch, lr, steps) of every run), "fit_curve" ({"batch",
    "steps"} of the fitted S(B)), "b_crit", "b_noise_mean" and "b_noise".
    """
    fig = go.Figure()
    for fit in fits:
        pts = [(b, lr, s) for b, lr, s in fit["points"] if _finite(s)]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[2] for p in pts], mode="markers", opacity=0.35,
                                     name=f"{_group_label(fit)} every lr", marker={"color": arch_color(fit["arch"])},
                                     hovertext=[f"B={p[0]} lr={p[1]:g}: S={p[2]:.3g}" for p in pts]))
        b = np.array(sorted(fit["best_steps"]), dtype=float)
        if len(b):
            fig.add_trace(go.Scatter(x=b, y=[fit["best_steps"][int(v)] for v in b], mode="markers+lines",
                                     name=f"{_group_label(fit)} best lr", marker={"color": arch_color(fit["arch"]),
                                                                                  "size": 10},
                                     line={"color": arch_color(fit["arch"]), "dash": dataset_dash(fit["dataset"])}))
        if _finite(fit["s_min"]) and len(b):
            fig.add_trace(go.Scatter(x=fit["fit_curve"]["batch"], y=fit["fit_curve"]["steps"], mode="lines",
                                     name="fit S<sub>min</sub> + E<sub>min</sub>(1/B \u2212 1/n)",
                                     line={"color": PREDICTION_COLOR, "dash": "dot"}))
        for value, label, dash, where in ((fit["b_crit"], "B<sub>crit</sub> (fit)", "dot", "top right"),
                                          (fit["b_noise_mean"], "mean B<sub>noise</sub> (prediction)", "solid",
                                           "top left"),
                                          (fit["b_noise"], "B<sub>noise</sub> at target", "dashdot", "bottom right")):
            if _finite(value) and value > 0:  # labels on different corners so they never overlap
                fig.add_vline(x=value, line_dash=dash, line_color=PREDICTION_COLOR if "noise" in label
                              else arch_color(fit["arch"]), annotation_text=label, annotation_position=where)
    return layout(fig, "Does the noise scale mark where bigger batches stop saving steps?", "batch size B",
                  "steps to reach the target loss", presentation, log_x=True, log_y=True)


def critical_noise(fits: list[dict], presentation: bool = False) -> go.Figure:
    """Noise scales along the tuned full-batch run against its training loss (B_noise of the other full-batch
    runs thin and dotted); the target loss and B_crit marked. `fits` as for `critical_steps`, with "noise_run"
    (the tuned full-batch run), "by_lr" (every full-batch run: "lr", "steps", "run") and "target"."""
    fig = go.Figure()
    for fit in fits:
        run = fit["noise_run"]
        if run is None:
            continue
        if fit is fits[0] or fit["target"] != fits[0]["target"]:
            fig.add_vline(x=fit["target"], line_dash="dot", line_color=PREDICTION_COLOR,
                          annotation_text=f"target loss {fit['target']:g}", annotation_position="top left")
        h = run.history.dropna(subset=["train_loss"])
        for column, label, dash in (("b_simple", "B<sub>simple</sub> = tr(\u03a3)/|G|\u00b2", "solid"),
                                    ("b_noise", "B<sub>noise</sub> = tr(H\u03a3)/G\u1d40HG", "dash")):
            if column in h:
                rows = h.dropna(subset=[column])
                fig.add_trace(_line(run, f"{_group_label(fit)} {label} (tuned lr {run.spec.optim.lr:.3g})",
                                    rows["train_loss"], rows[column], dash=dash, mode="lines+markers", width=3))
        others = [e for e in fit["by_lr"] if e["run"] is not run and "b_noise" in e["run"].history
                  and math.isfinite(e["steps"])]  # those that reached the target
        for i, e in enumerate(others):  # the other full-batch runs: how much B_noise depends on the lr
            rows = e["run"].history.dropna(subset=["train_loss", "b_noise"])
            fig.add_trace(_line(e["run"], f"{_group_label(fit)} B<sub>noise</sub> at lr {e['lr']:.3g}",
                                rows["train_loss"], rows["b_noise"], dash="dot", mode="lines",
                                opacity=_opacity_ramp(i, len(others)) * 0.6, width=1.5))
        if _finite(fit["b_crit"]):
            reference_line(fig, fit["b_crit"],
                           f"B<sub>crit</sub> = E<sub>min</sub>/S<sub>min</sub> = {fit['b_crit']:.3g} (fit)")
        if _finite(fit["b_noise_mean"]):
            reference_line(fig, fit["b_noise_mean"], f"mean B<sub>noise</sub> to target = {fit['b_noise_mean']:.3g}")
    fig = layout(fig, "How large is the gradient noise scale on the way to the target loss?",
                 "full training loss (falls to the right)", "noise scale (examples)", presentation,
                 log_x=True, log_y=True)
    fig.update_xaxes(autorange="reversed")
    return fig


# ------------------------------------------------------------------------------------------------
# scaling law and loss-curve collapse


def _opacity_ramp(i: int, n: int) -> float:
    return 0.35 + 0.65 * (i / max(n - 1, 1))


def scaling_law(groups: list[dict], presentation: bool = False) -> go.Figure:
    """Final loss vs parameter count (log-log) with the fitted L0 + A p^-alpha and L0 drawn in.

    `groups`: one dict per (arch, dataset, seed) with "key", "runs", "params", "losses" (by width) and the fit
    ("l0", "a", "alpha", "r2", "l0_pinned").
    """
    fig = go.Figure()
    for g in groups:
        arch, dataset, seed = g["key"]
        p, loss = np.asarray(g["params"], dtype=float), np.asarray(g["losses"], dtype=float)
        fig.add_trace(go.Scatter(x=p, y=loss, mode="markers", name=f"{arch} / {dataset} seed {seed}",
                                 marker={"color": arch_color(arch), "size": 10},
                                 hovertext=[spec_hover(r.spec) for r in g["runs"]]))
        if _finite(g["alpha"]) and len(p):
            grid = np.geomspace(p.min() / 1.5, p.max() * 1.5, 200)
            pinned = " (L0 pinned)" if g["l0_pinned"] else ""
            fig.add_trace(go.Scatter(x=grid, y=g["l0"] + g["a"] * grid ** (-g["alpha"]), mode="lines",
                                     name=f"fit {g['l0']:.3g} + {g['a']:.3g} p<sup>\u2212{g['alpha']:.2f}</sup> "
                                          f"(R\u00b2 {g['r2']:.3f}){pinned}",
                                     line={"color": PREDICTION_COLOR, "dash": dataset_dash(dataset)}))
            if g["l0"] > 0:
                reference_line(fig, g["l0"], f"L0 = {g['l0']:.3g}{pinned}")
    return layout(fig, "Does final loss fall as a power law in the number of parameters?", "parameters p",
                  "final test loss (MSE)", presentation, log_x=True, log_y=True)


def scaling_curves(curves: list[dict], tau_min: float, normalised: bool = True,
                   presentation: bool = False) -> go.Figure:
    """Test-loss curves of every width: raw (loss vs step) or normalised (L/L_final vs step/total).

    `curves`: one dict per finished run, by width: "run", "steps", "loss"; the collapse is scored from `tau_min`.
    """
    from ..universality import compute_fraction_normalise

    fig = go.Figure()
    ok = [c for c in curves if len(c["steps"]) >= 2]
    drawn = []
    for i, c in enumerate(ok):
        run, steps, loss = c["run"], c["steps"], c["loss"]
        if normalised:
            x, y = compute_fraction_normalise(steps, loss, total=float(run.spec.optim.steps))
        else:
            x, y = np.maximum(steps, 1.0), loss
        drawn.append((x, y))
        fig.add_trace(_line(run, f"{run.spec.model.arch} w={run.spec.model.width}", x, y,
                            opacity=_opacity_ramp(i, len(ok))))
    if normalised and drawn:
        grid = np.linspace(tau_min, 1.0, 100)
        master = np.exp(np.mean([np.interp(grid, x, np.log(y)) for x, y in drawn], axis=0))
        fig.add_trace(go.Scatter(x=grid, y=master, mode="lines", name="mean normalised curve (the collapse)",
                                 line={"color": PREDICTION_COLOR, "dash": "dash", "width": 3}))
        fig.add_vrect(x0=0, x1=tau_min, fillcolor="#cccccc", opacity=0.2, line_width=0,
                      annotation_text="not scored", annotation_position="top left")
    title = ("Do loss curves of all sizes collapse once divided by their final loss?" if normalised
             else "Loss curves of students of different widths (raw)")
    x_title = "fraction of training t / T" if normalised else "step"
    y_title = "test loss / final test loss" if normalised else "test loss (MSE)"
    return layout(fig, title, x_title, y_title, presentation, log_x=not normalised, log_y=True)


# ------------------------------------------------------------------------------------------------
# neural collapse


def _value_at(h, column: str, step: float) -> float:
    rows = h.dropna(subset=[column])
    rows = rows[rows["step"] == step]
    return float(rows[column].iloc[0]) if len(rows) else float("nan")


def collapse_nc1(runs, onsets: dict, fall_min: float, normalised: bool = True, presentation: bool = False) -> go.Figure:
    """NC1 against steps (log-log), raw or divided by its value at the terminal-phase onset (`onsets`: run key ->
    onset step, NaN without one: those runs are divided by their first value); the onset marked, and in the
    normalised view the prediction (below 1/fall_min of the onset value by the end)."""
    fig = go.Figure()
    marked: set[float] = set()  # steps whose line is labelled (one label per step)
    for run in runs:
        if "nc1" not in run.history:
            continue
        h = run.history.dropna(subset=["nc1"])
        if not len(h):
            continue
        onset = onsets.get(run.spec.key(), float("nan"))
        base = _value_at(h, "nc1", onset) if _finite(onset) else float(h["nc1"].iloc[0])
        y = h["nc1"] / base if normalised and _finite(base) and base > 0 else h["nc1"]
        note = "" if _finite(onset) or not normalised else " (no terminal phase: / initial NC1)"
        fig.add_trace(_line(run, f"{run.spec.model.arch} / {display_name(run.spec.data.name)}{note}",
                            np.maximum(h["step"], 1.0), y, mode="lines+markers"))
        if _finite(onset):
            step = max(onset, 1.0)
            fig.add_vline(x=step, line_dash="dot", line_color=arch_color(run.spec.model.arch),
                          annotation_text="99.9% train" if step not in marked else "",
                          annotation_position="bottom left")
            marked.add(step)
    if normalised:
        reference_line(fig, 1.0 / fall_min, f"predicted: below 1/{fall_min:g} of its onset value by the end")
    y_title = ("NC1 / NC1 at the terminal-phase onset" if normalised
               else "NC1 = tr(\u03a3<sub>W</sub>\u03a3<sub>B</sub><sup>+</sup>)/C")
    return layout(fig, "Does within-class variability keep collapsing after the training set is fitted?", "step",
                  y_title, presentation, log_x=True, log_y=True)


def collapse_geometry(runs, onsets: dict, presentation: bool = False) -> go.Figure:
    """Deviation of class-mean cosines from -1/(C-1) and NCC disagreement against steps, the terminal-phase onset
    of each run marked (`onsets`: run key -> step)."""
    fig = go.Figure()
    for run in runs:
        h = run.history
        for column, label, dash in (("nc2_etf_distance", "mean |cos + 1/(C-1)|", None),
                                    ("nc4", "1 - nearest-centre agreement", "dot")):
            if column in h:
                rows = h.dropna(subset=[column])
                fig.add_trace(_line(run, f"{run.spec.model.arch} {label}", np.maximum(rows["step"], 1.0),
                                    np.maximum(rows[column], 1e-4), dash=dash, mode="lines+markers"))
        onset = onsets.get(run.spec.key(), float("nan"))
        if _finite(onset):
            fig.add_vline(x=max(onset, 1.0), line_dash="dot", line_color=arch_color(run.spec.model.arch))
    return layout(fig, "Do class means keep approaching a simplex ETF in the terminal phase?", "step "
                  "(dotted: 99.9% train accuracy)", "deviation (0 at collapse; floor 1e-4)", presentation, log_x=True,
                  log_y=True)


def collapse_reference(trajectory, etf_max: float, presentation: bool = False) -> go.Figure:
    """The unconstrained-features model along gradient descent: NC1, ETF deviation and NC3 (log scale), with the
    exact-ETF prediction drawn as the tolerance `etf_max`."""
    fig = go.Figure()
    for column, label, dash in (("nc2_etf_distance", "ETF deviation mean |cos + 1/(C-1)|", "solid"),
                                ("nc1", "NC1", "dash"), ("nc3", "NC3", "dot")):
        if column in trajectory:
            fig.add_trace(go.Scatter(x=np.maximum(trajectory["step"], 1.0), y=np.maximum(trajectory[column], 1e-16),
                                     mode="lines+markers", name=label, line={"color": "#444444", "dash": dash}))
    reference_line(fig, etf_max, f"predicted: exact simplex ETF (deviation \u2264 {etf_max:g})")
    return layout(fig, "Does the unconstrained-features model reach an exact simplex ETF?",
                  "gradient-descent step", "deviation (0 at an exact simplex ETF)", presentation, log_x=True,
                  log_y=True)


# ------------------------------------------------------------------------------------------------
# heavy-tailed spectra


def esd_before_after(run, layer: str | None, presentation: bool = False) -> go.Figure:
    """ESD of one layer of one run (the phenomenon picks its best run's widest layer) at init (with its MP fit)
    and at the end (with its power-law tail); an empty figure without a run."""
    from ..spectra import marchenko_pastur_fit, mp_density, power_law_alpha

    fig = go.Figure()
    if run is None or layer is None:
        return layout(fig, "Do trained weight spectra grow power-law tails?", "eigenvalue of W\u1d40W/N", "density",
                      presentation, log_x=True, log_y=True)
    esd = run.spectra[(run.spectra["kind"] == "weight_esd") & (run.spectra["layer"] == layer)]
    q = _aspect_ratio(run, layer)
    for step, opacity, when in ((esd["step"].min(), 0.5, "init"), (esd["step"].max(), 1.0, "trained")):
        values = np.sort(esd[esd["step"] == step]["value"].to_numpy(dtype=float))
        values = values[values > values[-1] * 1e-12]
        edges = np.geomspace(values[0], values[-1] * 1.0001, 40)
        density, _ = np.histogram(values, bins=edges, density=True)
        centres = np.sqrt(edges[:-1] * edges[1:])
        keep = density > 0
        fig.add_trace(go.Scatter(x=centres[keep], y=density[keep], mode="lines+markers", opacity=opacity,
                                 name=f"{layer} {when} (step {int(step)})",
                                 line={"color": arch_color(run.spec.model.arch),
                                       "dash": "dot" if when == "init" else "solid"},
                                 hovertext=spec_hover(run.spec)))
        if when == "init":
            try:
                mp = marchenko_pastur_fit(values, q)
                grid = np.linspace(max(mp.lambda_minus, values[0] * 0.5), mp.lambda_plus, 200)
                fig.add_trace(go.Scatter(x=grid, y=mp_density(grid, mp.sigma2, q), mode="lines",
                                         name=f"Marchenko-Pastur fit (KS {mp.ks_distance:.3f})",
                                         line={"color": PREDICTION_COLOR, "dash": "dash"}))
            except ValueError:
                pass
        else:
            try:
                fit = power_law_alpha(values)
                tail = values[values >= fit.xmin]
                frac = len(tail) / len(values)
                grid = np.geomspace(fit.xmin, values[-1], 50)
                pdf = frac * (fit.alpha - 1.0) / fit.xmin * (grid / fit.xmin) ** (-fit.alpha)
                fig.add_trace(go.Scatter(x=grid, y=pdf, mode="lines", name=f"power-law tail alpha = {fit.alpha:.2f}",
                                         line={"color": PREDICTION_COLOR, "dash": "dot"}))
            except ValueError:
                pass
    return layout(fig, "Do trained weight spectra grow power-law tails?", "eigenvalue of W\u1d40W/N", "density",
                  presentation, log_x=True, log_y=True)


def _aspect_ratio(run, layer: str) -> float:
    """Marchenko-Pastur aspect ratio q = M/N of a layer's weight matrix (its shape from the spec, on the meta
    device: no data read, nothing allocated)."""
    import torch

    from ..data import describe
    from ..models import build
    from ..spectra import weight_matrix

    with torch.device("meta"):
        model = build(run.spec.model, describe(run.spec.data), device="meta")
    shape = weight_matrix(dict(model.named_parameters())[layer]).shape
    return min(shape) / max(shape)


def alpha_trajectories(curves: list[dict], alpha_max: float, normalised: bool = True,
                       presentation: bool = False) -> go.Figure:
    """Mean power-law alpha over the judged layers against steps, raw (with the heavy-tailed range: alpha <=
    `alpha_max`) or divided by its initial value. `curves`: one dict per run: "run", "steps", "alpha"."""
    fig = go.Figure()
    for i, c in enumerate(curves):
        run, alpha = c["run"], np.asarray(c["alpha"], dtype=float)
        y = alpha / alpha[0] if normalised else alpha
        fig.add_trace(_line(run, f"lr {run.spec.optim.lr:g} bs {run.spec.optim.batch_size}",
                            np.maximum(c["steps"], 1.0), y, mode="lines+markers",
                            opacity=_opacity_ramp(i, len(curves))))
    if normalised:
        reference_line(fig, 1.0, "no change (prediction: below)")
    else:
        reference_line(fig, alpha_max, f"alpha = {alpha_max:g}: heavy-tailed below (prediction)")
        reference_line(fig, 2.0, "alpha = 2 (very heavy-tailed below)")
    return layout(fig, "Does the power-law exponent alpha fall into the heavy-tailed range with training?", "step",
                  "alpha / alpha at init" if normalised else "mean power-law alpha", presentation, log_x=True)


def alpha_vs_error(points: list[dict], rho: float, rho_min: float, presentation: bool = False) -> go.Figure:
    """Final mean alpha against test error across the sweep, with the rank correlation, its predicted bound and a
    fitted trend. `points`: one dict per run: "run", "alpha_final", "test_error"."""
    fig = go.Figure()
    for i, p in enumerate(points):
        run = p["run"]
        fig.add_trace(go.Scatter(x=[p["alpha_final"]], y=[p["test_error"]], mode="markers+text",
                                 text=[f"lr {run.spec.optim.lr:g}, bs {run.spec.optim.batch_size}"],
                                 textposition="top center" if i % 2 == 0 else "bottom center",
                                 cliponaxis=False, showlegend=False,
                                 marker={"color": arch_color(run.spec.model.arch), "size": 11},
                                 hovertext=spec_hover(run.spec)))
    if len(points) >= 2:
        x = np.array([p["alpha_final"] for p in points])
        y = np.array([p["test_error"] for p in points])
        if np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 50)
            bound = f"predicted \u2265 {rho_min:.3g}" if _finite(rho_min) else "predicted > 0"
            fig.add_trace(go.Scatter(x=grid, y=intercept + slope * grid, mode="lines",
                                     name=f"trend (Spearman {rho:+.2f}; {bound})",
                                     line={"color": PREDICTION_COLOR, "dash": "dash"}))
    return layout(fig, "Do runs with heavier-tailed weights (lower alpha) generalise better?",
                  "final mean power-law alpha", "test error", presentation)


# ------------------------------------------------------------------------------------------------
# representation convergence


def _run_label(run) -> str:
    s = run.spec
    return f"{s.model.arch} w{s.model.width} s{s.seed}"


def cka_heatmaps(runs, trained: np.ndarray, init: np.ndarray, presentation: bool = False) -> go.Figure:
    """Linear CKA between every pair of runs: at initialisation (left) and trained (right)."""
    labels = [_run_label(r) for r in runs]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("at init", "trained"), horizontal_spacing=0.12)
    for col, matrix in ((1, init), (2, trained)):
        fig.add_trace(go.Heatmap(z=matrix, x=labels, y=labels, zmin=0.0, zmax=1.0, colorscale="Viridis",
                                 showscale=col == 2, colorbar={"title": "CKA"},
                                 hovertemplate="%{y} vs %{x}: CKA %{z:.3f}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(showticklabels=False, row=1, col=2)  # the same runs as the left panel's rows
    return layout(fig, "Do independently trained networks agree on their representation?", "", "", presentation,
                  height=640 if presentation else 520)


def cka_vs_width(runs, pairs: list[dict], normalised: bool = True, presentation: bool = False) -> go.Figure:
    """Mean CKA of seed pairs (per architecture) and cross-architecture pairs against width; init as reference."""
    fig = go.Figure()
    kinds: dict[str, list] = {}
    for p in pairs:
        kinds.setdefault(p["archs"], []).append(p)
    for archs, sel in sorted(kinds.items()):
        widths = sorted({p["width"] for p in sel})
        trained = np.array([np.mean([p["cka"] for p in sel if p["width"] == w]) for w in widths])
        init = np.array([np.mean([p["cka_init"] for p in sel if p["width"] == w]) for w in widths])
        first, second = archs.split("-")
        color = arch_color(first) if first == second else "#555555"
        name = f"{first} seeds" if first == second else f"{first} vs {second}"
        y = trained - init if normalised else trained
        fig.add_trace(go.Scatter(x=widths, y=y, mode="lines+markers", name=f"{name} trained",
                                 line={"color": color, "dash": "solid" if first == second else "dash"}))
        if not normalised:
            fig.add_trace(go.Scatter(x=widths, y=init, mode="lines+markers", name=f"{name} at init (reference)",
                                     opacity=0.45, line={"color": color, "dash": "dot"}))
    if normalised:
        reference_line(fig, 0.0, "no gain over initialisation")
    y_title = "CKA trained - CKA at init" if normalised else "linear CKA of penultimate features"
    return layout(fig, "Does agreement between networks grow with width?", "width", y_title, presentation,
                  log_x=True)
