"""Scaling law and loss-curve collapse: final loss vs parameters, and curves that fall onto one another.

Kaplan et al. 2020: final loss follows L(p) = L0 + A p^-alpha in the parameter count p. Qiu et al.
2025: loss curves of models of different sizes, each divided by its final loss and plotted against the
fraction of its training run, collapse onto one curve. Setting: students 16-w-w-1 of a standardised
teacher with 1,024 ReLU features (regression, MSE), Adam with warm-up + cosine decay, the same number
of minibatch steps for every width over a training set much larger than one batch (approximately
online: 65,536 examples, 4 epochs at quick size).

What the sources claim (quoted verbatim): Kaplan et al. 2020 (abstract, `SOURCE`): "The loss scales as a
power-law with model size, dataset size, and the amount of compute used for training, with some trends
spanning more than seven orders of magnitude." Qiu et al. 2025 (abstract): "loss curves from models of varying
sizes collapse onto a single universal curve when training compute and loss are normalized to unity at the
end of training." Two differences from Qiu et al., kept and stated: every width here trains for the same
number of steps (they train each size for its compute-optimal horizon), and the loss is divided by its final
value (they normalise the reducible loss L - L0).

Clauses and criteria (ours, a priori; the sources give no goodness-of-fit number):

1. the final loss follows a power law in the parameter count: R^2 of log L against the fit
   L0 + A p^-alpha >= `R2_MIN` = 0.95 over >= `MIN_SIZES` = 5 sizes (fewer finished sizes: no fit, fails);
2. loss falls with size: the fitted exponent alpha >= 0;
3. the normalised loss curves collapse: their spread across sizes on training fractions tau in [TAU_MIN, 1]
   is >= `COLLAPSE_MIN` = 3x smaller than the raw curves' spread.

Width 8 is back in the quick grid. An earlier version left it out after a calibration run had given R^2 0.917
with it (8-256) against 0.983 without it (16-256): width 8 sat 2.1x above width 16 (0.055 vs 0.026), a kink
rather than a power law. Dropping a size because the fit then passes is choosing the set-up after the result,
so the quick grid is widths 8-256 again, judged by the same R^2 criterion.

Loss curves are the test (population) loss at 10 evaluation steps, the quantity an online learner's
training loss estimates. The collapse uses `learnmech_core.universality`: x = step / total steps,
y = L / L_final (`compute_fraction_normalise`), and its `collapse_score` (mean relative spread across
widths, normalised over raw) on training fractions tau in [TAU_MIN, 1] (at tau = 0 every curve starts
from the same loss, so the raw curves agree there by construction); the reduction is its inverse.

Measured at quick (this version, widths 8-256; 1 torch thread, load 12-17):

| seed | final loss w8 / w16 / w256 | R^2 (>= 0.95) | alpha (>= 0) | spread reduction (>= 3) | CPU s (user + sys) |
|---|---|---|---|---|---|
| 0 | 0.0553 / 0.0258 / 0.0123 | 0.915 fails | 0.574 | 10.3 | 17.8 + 21.9 |
| 1 | 0.0394 / 0.0225 / 0.0099 | 0.962 | 0.508 | 9.4 | 17.3 + 16.1 |
| 2 | 0.0573 / 0.0270 / 0.0101 | 0.965 | 0.675 | 13.9 | 18.1 + 15.7 |

The whole claim holds on seeds 1 and 2 (pass fraction 2/3), so the prediction holds; seed 0 reproduces
the kink at width 8 that had it dropped (R^2 0.915; 0.917 in the earlier calibration). The system time is
building the 65,536-example teacher data set and its per-width copies; wall 70-186 s at that load.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .base import Clause, Phenomenon, Source, Verdict, at_least, run_row

R2_MIN = 0.95
MIN_SIZES = 5
COLLAPSE_MIN = 3.0  # raw spread / normalised spread
TAU_MIN = 0.2  # collapse is scored on training fractions from here to 1 (the start is shared by construction)

# size -> (widths, steps, batch, n_train, warmup steps, seeds)
_SIZES = {
    "tiny": ((4, 8, 16, 32, 64), 300, 64, 4096, 30, (0,)),
    "quick": ((8, 16, 24, 32, 64, 128, 256), 2000, 128, 65536, 100, (0,)),
    "full": ((8, 16, 32, 64, 128, 256, 512, 1024), 4000, 512, 65536, 200, (0,)),
}


def param_count(run) -> int:
    """Trainable parameters of a run's model (from its saved weights, else from the spec)."""
    if run.weights:
        return int(sum(np.asarray(v).size for v in run.weights.values()))
    from ..data import describe
    from ..models import param_count as count

    return count(run.spec.model, describe(run.spec.data))


def final_loss(run) -> float:
    """Final population loss estimate: test loss at the last step (else the last training loss)."""
    value = run.final("test_loss")
    return value if math.isfinite(value) else run.final("loss")


def loss_curve(run) -> tuple[np.ndarray, np.ndarray]:
    """(steps, test loss) at the evaluation steps: the population loss, as in online training."""
    h = run.history
    if "test_loss" not in h:
        return np.array([]), np.array([])
    h = h.dropna(subset=["test_loss"])
    h = h[h["test_loss"] > 0]
    return h["step"].to_numpy(dtype=float), h["test_loss"].to_numpy(dtype=float)


def curve_collapse(runs, tau_min: float = TAU_MIN) -> dict:
    """Spread of the loss curves before and after the compute-fraction normalisation (universality module)."""
    from ..universality import collapse_score, compute_fraction_normalise, curve_spread

    raw, norm = [], []
    for run in runs:
        steps, loss = loss_curve(run)
        if len(steps) < 3:
            continue
        tau, y = compute_fraction_normalise(steps, loss, total=float(run.spec.optim.steps))
        keep = tau >= tau_min
        raw.append((steps[keep], loss[keep]))
        norm.append((tau[keep], y[keep]))
    if len(raw) < 2:
        return {"raw_spread": float("nan"), "normalised_spread": float("nan"), "reduction": float("nan")}
    score = collapse_score(raw, norm)
    return {"raw_spread": curve_spread(raw), "normalised_spread": curve_spread(norm),
            "reduction": 1.0 / score if score > 0 else float("inf")}


def fit_scaling_law(params, losses) -> dict:
    """Fit L = L0 + A p^-alpha (0 <= L0 < min L) by least squares in log L; R^2 in log L; flags a pinned L0."""
    from scipy.optimize import minimize_scalar

    p, loss = np.asarray(params, dtype=float), np.asarray(losses, dtype=float)
    nan = {"l0": float("nan"), "a": float("nan"), "alpha": float("nan"), "r2": float("nan"), "l0_pinned": False}
    if len(p) < 3 or np.any(loss <= 0):
        return nan
    log_p, log_l = np.log(p), np.log(loss)
    ceiling = float(np.min(loss)) * (1.0 - 1e-6)

    def solve(l0: float):
        y = np.log(loss - l0)
        slope, intercept = np.polyfit(log_p, y, 1)
        pred = np.log(l0 + np.exp(intercept + slope * log_p))
        return float(np.sum((pred - log_l) ** 2)), slope, intercept

    res = minimize_scalar(lambda u: solve(ceiling * u)[0], bounds=(0.0, 1.0), method="bounded",
                          options={"xatol": 1e-6})
    u = float(res.x)
    candidates = [(solve(ceiling * v)[0], v) for v in (0.0, u, 1.0)]
    sse, u = min(candidates)
    l0 = ceiling * u
    _, slope, intercept = solve(l0)
    ss_tot = float(np.sum((log_l - log_l.mean()) ** 2))
    return {"l0": l0, "a": float(np.exp(intercept)), "alpha": float(-slope),
            "r2": 1.0 - sse / ss_tot if ss_tot > 0 else float("nan"), "l0_pinned": bool(u > 0.999)}


def scaling_summary(runs) -> list[dict]:
    """One entry per (arch, dataset, seed) group of finished runs, by width: widths, params, final losses, the
    power-law fit and the curve collapse."""
    groups: dict[tuple, list] = {}
    for run in runs:
        if run.status == "ok" and math.isfinite(final_loss(run)):
            groups.setdefault((run.spec.model.arch, run.spec.data.name, run.spec.seed), []).append(run)
    out = []
    for key, group in groups.items():
        group = sorted(group, key=lambda r: r.spec.model.width)
        params = [param_count(r) for r in group]
        finals = [final_loss(r) for r in group]
        out.append({"key": key, "n": len(group), "runs": group, "widths": [r.spec.model.width for r in group],
                    "params": params, "losses": finals, **fit_scaling_law(params, finals), **curve_collapse(group)})
    return out


class ScalingCollapse(Phenomenon):
    name = "scaling_collapse"
    title = "Does final loss follow a power law in size, and do loss curves collapse onto one?"
    direction = "laws"
    sources = (
        "Kaplan et al. 2020, Scaling laws for neural language models",
        "Qiu et al. 2025, Scaling collapse reveals universal dynamics in compute-optimally trained neural networks",
    )
    source = Source("Kaplan et al. 2020, Scaling laws for neural language models, abstract",
                    "The loss scales as a power-law with model size, dataset size, and the amount of compute used "
                    "for training, with some trends spanning more than seven orders of magnitude.")
    prediction = (f"Final loss vs parameter count fits $L_0 + A p^{{-\\alpha}}$ with $R^2 \\geq {R2_MIN:g}$ over "
                  f"$\\geq {MIN_SIZES}$ sizes and $\\alpha \\geq 0$, and dividing each loss curve by its final loss "
                  f"(against the fraction of training) shrinks the spread between sizes at least {COLLAPSE_MIN:g}x.")
    measures = ("Final test loss of students of several widths trained for the same number of Adam steps with a "
                "cosine schedule; their smoothed training-loss curves, raw and normalised.")
    archs = ("mlp",)
    datasets = ("teacher_student",)
    allowed_archs = ("mlp", "resnet")
    normalisation = "loss / final loss against step / total steps"

    def _grid(self, size, archs, datasets):
        from ..config import current_caps

        widths, steps, batch, n_train, warmup, seeds = _SIZES[size]
        n_train = min(n_train, current_caps().max_samples)  # the hosted profile caps samples (more epochs there)
        out = []
        for arch in archs:
            for dataset in datasets:
                for seed in seeds:
                    for width in widths:
                        out.append(RunSpec(
                            model=ModelSpec(arch=arch, width=width, depth=2, activation="relu"),
                            data=DataSpec(name=dataset, teacher_width=1024, dim=16, n_train=n_train,
                                          n_test=min(4096, n_train)),
                            optim=OptimSpec(name="adam", lr=3e-3, steps=steps, batch_size=batch, loss="mse",
                                            schedule="warmup_cosine", warmup_steps=warmup, eval_every=steps // 10),
                            probes=ProbeSpec(log_every=max(1, steps // 400)),
                            seed=seed,
                        ))
        return out

    def verdict(self, runs):
        results = scaling_summary(runs)
        rows = [run_row(r, None, final_loss(r), "", width=r.spec.model.width, params=param_count(r)) for r in runs]
        if not results:
            return Verdict.none("no runs to judge")
        worst_r2 = float(min(r["r2"] if r["n"] >= MIN_SIZES and math.isfinite(r["r2"]) else -math.inf
                             for r in results))
        worst_alpha = float(min(r["alpha"] if math.isfinite(r["alpha"]) else -math.inf for r in results))
        worst_red = float(min(r["reduction"] if math.isfinite(r["reduction"]) else -math.inf for r in results))
        sizes = min(r["n"] for r in results)
        clauses = [
            Clause.judge("the final loss scales as a power law with model size",
                         f"R^2 of log L against L0 + A p^-alpha ({sizes} sizes finished; needs >= {MIN_SIZES})",
                         at_least(R2_MIN), worst_r2),
            Clause.judge("loss falls with size", "fitted exponent alpha", at_least(0.0), worst_alpha),
            Clause.judge("loss curves of all sizes collapse onto one when normalised",
                         f"raw spread / normalised spread of the loss curves on tau in [{TAU_MIN:g}, 1]",
                         at_least(COLLAPSE_MIN), worst_red),
        ]
        parts = []
        for res in results:
            arch, dataset, seed = res["key"]
            l0_note = (f"L0 = {res['l0']:.3g} is not identified (pinned at the smallest loss)" if res["l0_pinned"]
                       else f"L0 = {res['l0']:.3g}")
            losses = ", ".join(f"w{w} {v:.3g}" for w, v in zip(res["widths"], res["losses"], strict=True))
            parts.append(
                f"{arch}/{dataset} seed {seed}: final losses {losses}; L = L0 + {res['a']:.3g} p^-{res['alpha']:.3f}, "
                f"R^2 = {res['r2']:.4f} over {res['n']} sizes ({l0_note}); loss-curve spread {res['raw_spread']:.3f} "
                f"raw -> {res['normalised_spread']:.3f} normalised = {res['reduction']:.2f}x smaller (tau in "
                f"[{TAU_MIN:g}, 1]).")
        explanation = " ".join(parts) + (f" Needs R^2 >= {R2_MIN:g} over >= {MIN_SIZES} sizes, alpha >= 0 and a spread "
                                         f"reduction >= {COLLAPSE_MIN:g}x.")
        first = results[0]
        details = {"r2": worst_r2, "collapse_reduction": worst_red, "alpha": first["alpha"], "l0": first["l0"],
                   "a": first["a"], "l0_pinned": first["l0_pinned"], "raw_spread": first["raw_spread"],
                   "normalised_spread": first["normalised_spread"]}
        return Verdict.of(clauses, explanation, rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        groups = scaling_summary(runs)
        curves = [{"run": r, "steps": steps, "loss": loss}
                  for r in sorted((r for r in runs if r.status == "ok"), key=lambda r: r.spec.model.width)
                  for steps, loss in [loss_curve(r)]]
        return [plots.scaling_law(groups, presentation),
                plots.scaling_curves(curves, TAU_MIN, normalised, presentation)]


PHENOMENON = ScalingCollapse()
