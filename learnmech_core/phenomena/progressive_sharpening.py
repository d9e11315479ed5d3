"""Progressive sharpening: below 2/eta, the sharpness keeps rising during full-batch GD (Cohen et al. 2021).

Every run uses eta = 0.05 (2/eta = 40, several times the sharpness these systems reach) for a fixed
eta x step horizon. Sharpness is measured every `every` steps. The first 10% of training is left out:
there the network first fits the mean output and the sharpness dips before it starts to rise (seen
on every MSE system here); the claim is about the rise that follows.

Verdict. Per run: Spearman rank correlation rho between step and sharpness after the first 10%, and
the sharpening strength S_final / S(10%). A run whose sharpness reached 0.9 x 2/eta is at the edge of
stability, not a test of this claim, and is reported but left out. The prediction holds when the
median rho over the tested runs exceeds 0.8 and at least two thirds of them do. The comparisons the
paper adds (narrower, deeper nets and MSE sharpen more) are measured on matched pairs of runs that
differ in width, depth or loss only, and reported with their numbers; they are secondary and do not
decide the verdict (on these small datasets wider SP nets sharpen more, the opposite of the paper's
CIFAR-10 trend, and the verdict text says so when it happens).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..universality import normalise
from .base import Phenomenon, Verdict, data_spec, run_row
from .edge_of_stability import gd_spec, label, systems

RHO_MIN = 0.8
MIN_FRACTION = 2 / 3
SKIP_FRACTION = 0.1
EOS_REACHED = 0.9  # sharpness x eta/2 at or above this: the run reached the edge of stability
LR = 0.05
# size -> (n_train, eta x step horizon, probe every)
_SIZES = {"tiny": (128, 25.0, 25), "quick": (256, 40.0, 40), "full": (1024, 100.0, 50)}
_BASE = ("tanh", 64, 3)
_NARROW, _SHALLOW = 32, 1


def _data(dataset: str, n_train: int) -> DataSpec:
    """The same data for every run of a dataset (MSE and cross-entropy alike), so pairs differ in one thing."""
    return data_spec(dataset, n_train, 128)


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points or constant data."""
    x, y = pd.Series(np.asarray(x, dtype=float)), pd.Series(np.asarray(y, dtype=float))
    if len(x) < 3:
        return float("nan")
    rx, ry = x.rank(), y.rank()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(rx.corr(ry))


def sharpening(run) -> dict:
    """rho (step vs sharpness after the first 10%), strength S_final / S(10%), peak sharpness x eta/2."""
    nan = float("nan")
    out = {"rho": nan, "strength": nan, "peak_ratio": nan, "points": 0}
    if run.status == "failed" or "sharpness" not in run.history:
        return out
    table = normalise(run.history, run.spec, "sharpness")
    if not len(table):
        return out
    out["peak_ratio"] = float(table["y_norm"].max())
    late = table[table["step"] >= SKIP_FRACTION * run.spec.optim.steps]
    out["points"] = len(late)
    if len(late) >= 3:
        out["rho"] = spearman(late["step"], late["y"])
        first = float(late["y"].iloc[0])
        out["strength"] = float(late["y"].iloc[-1]) / first if first > 0 else nan
    return out


def _pair_checks(runs, rows) -> list[dict]:
    """Matched pairs that differ only in width, depth or loss: does the predicted member sharpen more?"""
    by_key = {r["key"]: r for r in rows}
    checks = []
    for a in runs:
        for b in runs:
            sa, sb = a.spec, b.spec
            ra, rb = by_key[sa.key()], by_key[sb.key()]
            if not (math.isfinite(ra["strength"]) and math.isfinite(rb["strength"])):
                continue
            same_data = sa.data == sb.data and sa.model.arch == sb.model.arch and \
                sa.model.activation == sb.model.activation
            if not same_data:
                continue
            m_a, m_b = sa.model, sb.model
            if m_a.width < m_b.width and m_a.depth == m_b.depth and sa.optim.loss == sb.optim.loss:
                kind = "narrower"
            elif m_a.depth > m_b.depth and m_a.width == m_b.width and sa.optim.loss == sb.optim.loss:
                kind = "deeper"
            elif sa.optim.loss == "mse" and sb.optim.loss == "ce" and m_a.width == m_b.width and m_a.depth == m_b.depth:
                kind = "mse"
            else:
                continue
            checks.append({"claim": kind, "holds": ra["strength"] > rb["strength"],
                           "text": f"{kind} sharpens more: {label(sa)} w={m_a.width} d={m_a.depth} x{ra['strength']:.2f} vs "
                                   f"{label(sb)} w={m_b.width} d={m_b.depth} x{rb['strength']:.2f}"})
    return checks


class ProgressiveSharpening(Phenomenon):
    name = "progressive_sharpening"
    title = "Does sharpness keep rising while the learning rate is too small to reach 2/\u03b7?"
    direction = "laws"
    sources = ("Cohen, Kaur, Li, Kolter & Talwalkar 2021, Gradient descent on neural networks typically occurs at "
               "the edge of stability (ICLR 2021), section 3 and appendix on width, depth and loss",
               "Jastrzebski et al. 2020, The break-even point on optimization trajectories of deep neural networks")
    prediction = ("With \u03b7 small enough that the sharpness never reaches 2/\u03b7, the sharpness rises during "
                  f"training: Spearman rank correlation of sharpness with step > {RHO_MIN:g}, more strongly for "
                  "narrower and deeper networks and for MSE than cross-entropy.")
    measures = (f"The top Hessian eigenvalue during full-batch GD at \u03b7 = {LR:g} after the first "
                f"{SKIP_FRACTION:.0%} of training; its rank correlation with step and its growth S_final / S(10%), "
                "on matched pairs that differ in width, depth or loss.")
    archs = ("mlp", "cnn")
    datasets = ("digits", "gaussian_mixture")
    allowed_datasets = ("digits", "gaussian_mixture", "teacher_student", "mnist", "fashion_mnist", "cifar10")
    upload_tasks = ("classification",)
    normalisation = "sharpness / initial sharpness against \u03b7 \u00d7 step"

    def _grid(self, size, archs, datasets):
        n_train, horizon, every = _SIZES[size]
        grid = systems(archs, datasets)
        if size == "tiny":  # the MLPs of the last dataset (gaussian_mixture by default: sharpens early)
            grid = [g for g in grid if g[4] == datasets[-1]][:2] or grid[:2]
        out = [gd_spec(a, act, w, d, _data(ds, n_train), "mse", LR, horizon, every, 1e-2)
               for a, act, w, d, ds in grid]
        # matched pairs on the MLP of the last dataset: narrower, shallower and cross-entropy variants
        pair_ds = datasets[-1]
        if "mlp" in archs and size != "tiny":
            act, w, d = _BASE
            variants = [(_NARROW, d, "mse"), (w, _SHALLOW, "mse")]
            if pair_ds != "teacher_student":
                variants.append((w, d, "ce"))
            if size == "full":
                variants += [(4 * w, d, "mse"), (w, d + 2, "mse")]
            for vw, vd, loss in variants:
                out.append(gd_spec("mlp", act, vw, vd, _data(pair_ds, n_train), loss, LR, horizon, every,
                                   1e-2))
        return out

    def verdict(self, runs):
        rows = []
        for run in runs:
            m = sharpening(run)
            tested = run.status == "ok" and math.isfinite(m["peak_ratio"]) and m["peak_ratio"] < EOS_REACHED
            ok = tested and math.isfinite(m["rho"]) and m["rho"] > RHO_MIN
            rows.append(run_row(run, ok if tested else None, m["rho"], tested=tested, label=label(run.spec),
                                width=run.spec.model.width, depth=run.spec.model.depth, loss=run.spec.optim.loss,
                                activation=run.spec.model.activation, lr=run.spec.optim.lr, **m))
        tested = [r for r in rows if r["tested"]]
        if not tested:
            return Verdict(False, float("nan"), RHO_MIN, 0.0,
                           "no run stayed below 2/\u03b7 with a finite sharpness: nothing tests the claim",
                           per_run=rows)
        rhos = [r["rho"] for r in tested if math.isfinite(r["rho"])]
        median = float(np.median(rhos)) if rhos else float("nan")
        within = sum(bool(r["passed"]) for r in tested) / len(tested)
        passed = math.isfinite(median) and median > RHO_MIN and within >= MIN_FRACTION
        text = (f"Median rank correlation of sharpness with step = {median:.3f} over {len(tested)} runs below 2/\u03b7 "
                f"(predicted > {RHO_MIN:g}); {within:.0%} of them above {RHO_MIN:g} (needs >= {MIN_FRACTION:.0%}).")
        flat = [f"{r['label']} w={r['width']} d={r['depth']} (\u03c1={r['rho']:.2f})" for r in tested if not r["passed"]]
        if flat:
            text += " Not sharpening: " + "; ".join(flat) + "."
        skipped = [r["label"] for r in rows if not r["tested"]]
        if skipped:
            text += " Left out (reached 0.9 x 2/\u03b7, or did not finish): " + "; ".join(skipped) + "."
        checks = _pair_checks(runs, rows)
        if checks:
            text += " Secondary comparisons (reported, not part of the verdict): " + "; ".join(
                c["text"] + (" - holds" if c["holds"] else " - fails") for c in checks) + "."
        details = {"fraction_above": within, "n_tested": len(tested),
                   **{f"secondary_{c['claim']}_holds": bool(c["holds"]) for c in checks},
                   "median_strength": float(np.nanmedian([r["strength"] for r in tested])) if tested else float("nan")}
        return Verdict(passed, median, RHO_MIN, 0.0, text, per_run=rows, details=details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_curvature as plots

        figs = [plots.sharpening_curves(runs, verdict, normalised, presentation)]
        if verdict is not None:
            figs.append(plots.sharpening_strengths(verdict, presentation))
        return figs


PHENOMENON = ProgressiveSharpening()
