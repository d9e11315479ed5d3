"""Conservation laws of homogeneous networks: layer balances ||W_{l+1}||^2 - ||W_l||^2 under gradient flow.

For a bias-free ReLU or linear network <W_l, dL/dW_l> is the same for every layer, so gradient flow
conserves b_l = ||W_{l+1}||^2 - ||W_l||^2 (Du et al. 2018; Kunin et al. 2021). A GD step of rate eta
changes it by eta^2 (||G_{l+1}||^2 - ||G_l||^2): the drift per step grows as eta^2. With L2 weight decay
lambda, db/dt = -2 lambda b, so b(t) = b(0) e^(-2 lambda t) in gradient-flow time t = eta x step (the
discrete step multiplies b by (1 - eta lambda)^2, rate -ln((1 - eta lambda)^2)/eta = 2 lambda + O(eta);
we compare with the gradient-flow 2 lambda and report the discrete value next to it).

Runs, per architecture and dataset: GD at several eta over the same gradient-flow time (float64, so the
O(eta^2) drift is not drowned by rounding) and one run with weight decay. A run whose loss rises above
its start has left gradient flow (a catapult above 2/sharpness); it is reported and left out of the fit.
Measured from the history columns `balance_<l>` that ProbeSpec(layer_norms=True) records every step.
"""

from __future__ import annotations

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..data import describe
from ..models import ARCH_INPUTS
from .base import Phenomenon, Verdict, data_spec, run_row

SLOPE_EXPECTED, SLOPE_TOL = 2.0, 0.3
DECAY_TOL = 0.10  # relative error of the fitted decay rate against 2 lambda
SIZE_SETTINGS = {  # eta well below 2/sharpness: a width-64 deep linear net catapults at 0.1, width 256 at 0.025
    # lrs, gradient-flow time T, (weight decay, its lr, its time T), width, n_train
    "tiny": ((0.0125, 0.025, 0.05), 1.0, (0.2, 0.05, 5.0), 32, 128),
    "quick": ((0.00625, 0.0125, 0.025, 0.05), 2.0, (0.1, 0.05, 10.0), 64, 256),
    "full": ((0.00078125, 0.0015625, 0.003125, 0.00625, 0.0125), 4.0, (0.05, 0.01, 30.0), 256, 1024),
}


def _model(arch: str, width: int) -> ModelSpec:
    if arch == "deep_linear":
        return ModelSpec(arch=arch, width=width, depth=3, activation="linear", bias=False)
    if arch == "cnn":
        return ModelSpec(arch=arch, width=max(4, width // 8), depth=2, activation="relu", bias=False)
    return ModelSpec(arch=arch, width=width, depth=2, activation="relu", bias=False)


def balance_columns(run) -> list[str]:
    """History columns holding layer balances."""
    return sorted(c for c in run.history.columns if c.startswith("balance_"))


def drift_per_step(run) -> float:
    """Mean over layers and steps of |b_l(k+1) - b_l(k)|: how much GD breaks the conservation law per step."""
    cols = balance_columns(run)
    if not cols or run.status != "ok":
        return float("nan")
    h = run.history.dropna(subset=cols).sort_values("step")
    steps = np.diff(h["step"].to_numpy(float))
    if not len(steps):
        return float("nan")
    return float(np.mean([np.mean(np.abs(np.diff(h[c].to_numpy(float))) / steps) for c in cols]))


def follows_gradient_flow(run, slack: float = 0.05) -> bool:
    """Whether GD tracked gradient flow: the loss never rose more than 5% above its initial value.

    A run above the stability threshold 2/sharpness catapults (its loss jumps up); the O(eta^2) law is
    the Taylor expansion of GD around gradient flow and says nothing there.
    """
    loss = run.history["loss"].dropna().to_numpy(float) if "loss" in run.history else np.zeros(0)
    return bool(run.status == "ok" and len(loss) and np.all(np.isfinite(loss)) and loss.max() <= (1 + slack) * loss[0])


def decay_fit(run) -> dict:
    """Fit log|b(t)| = c - rate t on the balance with the largest |b(0)|; compare rate with 2 lambda."""
    o = run.spec.optim
    cols = balance_columns(run)
    nan = {"rate": float("nan"), "ratio": float("nan"), "column": None, "two_lambda": 2 * o.weight_decay,
           "discrete": -2 * np.log(1 - o.lr * o.weight_decay) / o.lr}
    if not cols or run.status != "ok":
        return nan
    h = run.history.dropna(subset=cols).sort_values("step")
    col = max(cols, key=lambda c: abs(h[c].iloc[0]))
    b = h[col].to_numpy(float)
    t = h["step"].to_numpy(float) * o.lr
    if np.any(b == 0) or np.any(np.sign(b) != np.sign(b[0])):
        return {**nan, "column": col}
    rate = -np.polyfit(t, np.log(np.abs(b)), 1)[0]
    return {**nan, "rate": float(rate), "ratio": float(rate / (2 * o.weight_decay)), "column": col}


class ConservationLaws(Phenomenon):
    name = "conservation_laws"
    title = "Do homogeneous networks conserve their layer balances ||W_{l+1}||^2 - ||W_l||^2?"
    direction = "laws"
    sources = ("Du, Hu & Lee 2018, Algorithmic regularization in learning deep homogeneous models",
               "Kunin et al. 2021, Neural mechanics: symmetry and broken conservation laws in deep learning dynamics")
    prediction = ("Gradient flow conserves each balance; GD breaks it by O(eta^2) per step (log-log slope 2 +- 0.3 "
                  "of drift against eta) and weight decay lambda makes it decay as e^(-2 lambda t) (rate within 10%).")
    measures = ("Squared Frobenius norms of every weight layer at every GD step of a bias-free ReLU or linear net, "
                "for several learning rates over the same gradient-flow time, and with weight decay.")
    archs = ("mlp", "deep_linear")
    datasets = ("teacher_student",)
    allowed_archs = ("mlp", "deep_linear", "cnn")
    allowed_datasets = ("teacher_student", "digits", "gaussian_mixture", "linear_lowrank", "moons", "circles")
    upload_tasks = ("classification", "regression")
    normalisation = "drift / eta^2 and b(t)/b(0) against 2 lambda t"

    def _grid(self, size, archs, datasets):
        lrs, horizon, (wd, wd_lr, wd_t), width, n_train = SIZE_SETTINGS[size]
        pairs = [(a, d) for a in archs for d in datasets
                 if describe(DataSpec(name=d)).kind in ARCH_INPUTS[a]]
        if not pairs:
            raise ValueError(f"{self.name}: none of architectures {', '.join(archs)} can take datasets "
                             f"{', '.join(datasets)} (cnn needs digits)")
        specs = []
        for arch, dataset in pairs:
            base = RunSpec(model=_model(arch, width), data=data_spec(dataset, n_train, 64, dim=8),
                           optim=OptimSpec(name="gd", lr=lrs[0], steps=1, loss="mse", eval_every=0),
                           probes=ProbeSpec(log_every=1, layer_norms=True, save_weights=False), dtype="float64")
            for lr in lrs:
                specs.append(base.replace(**{"optim.lr": lr, "optim.steps": int(round(horizon / lr))}))
            specs.append(base.replace(**{"optim.lr": wd_lr, "optim.steps": int(round(wd_t / wd_lr)),
                                         "optim.weight_decay": wd}))
        return specs

    def verdict(self, runs) -> Verdict:
        groups: dict = {}
        for run in runs:
            groups.setdefault((run.spec.model.arch, run.spec.data.name), []).append(run)
        rows, checks, details, notes = [], [], {}, []
        for (arch, dataset), members in groups.items():
            plain = [r for r in members if r.spec.optim.weight_decay == 0]
            decayed = [r for r in members if r.spec.optim.weight_decay > 0]
            lrs = np.array([r.spec.optim.lr for r in plain])
            drifts = np.array([drift_per_step(r) for r in plain])
            tracking = np.array([follows_gradient_flow(r) for r in plain], dtype=bool)
            ok = np.isfinite(drifts) & (drifts > 0) & tracking
            if (~tracking).any():
                notes.append(f"{arch}/{dataset} at eta = {', '.join(f'{v:g}' for v in lrs[~tracking])} left gradient "
                             "flow (the loss rose above its start: a catapult) and is left out of the fit")
            slope = float(np.polyfit(np.log(lrs[ok]), np.log(drifts[ok]), 1)[0]) if ok.sum() >= 3 else float("nan")
            slope_ok = bool(np.isfinite(slope) and abs(slope - SLOPE_EXPECTED) <= SLOPE_TOL)
            checks.append((f"drift slope ({arch}, {dataset})", slope, SLOPE_EXPECTED, SLOPE_TOL, slope_ok))
            details[f"slope[{arch},{dataset}]"] = slope
            for r, d, tr in zip(plain, drifts, tracking):
                rows.append(run_row(r, slope_ok if tr else None, float(d), role="drift", lr=r.spec.optim.lr,
                                    group_slope=slope, follows_gradient_flow=bool(tr)))
            for r in decayed:
                fit = decay_fit(r)
                good = bool(np.isfinite(fit["ratio"]) and abs(fit["ratio"] - 1) <= DECAY_TOL)
                checks.append((f"decay rate / 2 lambda ({arch}, {dataset})", fit["ratio"], 1.0, DECAY_TOL, good))
                details[f"decay_ratio[{arch},{dataset}]"] = fit["ratio"]
                rows.append(run_row(r, good, fit["ratio"], role="weight_decay", rate=fit["rate"],
                                    two_lambda=fit["two_lambda"], discrete_rate=fit["discrete"], balance=fit["column"]))
        if not checks:
            return Verdict(False, float("nan"), SLOPE_EXPECTED, SLOPE_TOL, "No runs to judge.", rows)
        passed = all(c[4] for c in checks)
        slope_checks = [c for c in checks if c[0].startswith("drift")]
        failing = [c for c in checks if not c[4]]
        label, measured, expected, tol, _ = (max(failing, key=lambda c: abs(c[1] - c[2]) / c[3]
                                                 if np.isfinite(c[1]) else np.inf)
                                             if failing else max(slope_checks, key=lambda c: abs(c[1] - c[2])))
        parts = [f"{name} = {value:.3g} (predicted {exp:g} \u00b1 {t:g}) {'holds' if ok else 'fails'}"
                 for name, value, exp, t, ok in checks]
        lead = ("Balances are conserved up to O(eta^2) per step and decay at 2 lambda with weight decay. " if passed
                else "The conservation law is not borne out here. ")
        tail = "".join(f" Note: {n}." for n in notes)
        return Verdict(passed, float(measured), expected, tol,
                       lead + "; ".join(parts) + f". Headline: {label}." + tail, rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_solvable as plots

        return [plots.conservation_drift_figure(runs, normalised, presentation),
                plots.conservation_decay_figure(runs, normalised, presentation)]


PHENOMENON = ConservationLaws()
