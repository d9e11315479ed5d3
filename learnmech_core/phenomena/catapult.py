"""Catapult phase: lazy below 2/lambda_0, spike-and-land between 2/lambda_0 and eta_max, divergence above.

Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari 2020. Wide two-layer networks in NTK parametrisation
(width 1024, MSE, full-batch GD): a ReLU MLP and a two-layer linear network (`deep_linear`, depth 2),
whose exact model predicts eta_max = 4/lambda_0.

Specs. The learning rates are multiples c of 2/lambda_0, with lambda_0 the top Hessian eigenvalue of the
initial model on the training set, measured in `_specs` (Lanczos, tol 1e-4) once per (model, data,
seed) in a dict local to the call; lr = c x 2/lambda_0 rounded to 4 significant digits, so the spec is
a pure function of its inputs. The verdict does not trust that number: it recomputes c = eta x S_0 / 2
from each run's own sharpness at step 0.

Phases, from each run's loss: diverged (status diverged, or final loss not below the initial loss),
catapult (the loss rises at least `SPIKE_MIN` x above its running minimum, then converges), lazy
(otherwise: the loss falls monotonically). `diverge_factor` is 1e6: a catapult spike can exceed 1000x
the initial loss and still come back.

Verdict. For every system, ordered by c, the phases must read lazy ... catapult ... diverged (all three,
no reversal); the first boundary, the geometric mean of the largest lazy c and the smallest catapult
c, must be 1 +- 0.1 (median over systems). The second boundary is reported next to the linear model's
2 (eta_max = 4/lambda_0); for ReLU nets the paper measured larger values.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..data import display_name
from .base import reseed, Phenomenon, Verdict, data_spec, run_row

TOLERANCE = 0.10
SPIKE_MIN = 1.1
PHASES = ("lazy", "catapult", "diverged")
_MODELS = {"mlp": dict(activation="relu", depth=1), "deep_linear": dict(activation="linear", depth=2)}
_C = {
    "tiny": (0.5, 0.9, 1.2, 1.6, 3.0),
    "quick": (0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.2, 1.5, 1.8, 2.2, 3.0, 6.0),
    "full": (0.25, 0.5, 0.8, 0.9, 0.95, 0.98, 1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 1.8, 2.0, 2.2, 2.6, 3.0, 4.0, 6.0,
             8.0, 12.0, 16.0),
}
# size -> (width, n_train, steps, sharpness every, seeds)
_SIZES = {"tiny": (256, 64, 100, 10, (0,)), "quick": (1024, 128, 200, 10, (0,)),
          "full": (2048, 512, 1000, 10, (0, 1))}


def base_spec(arch: str, dataset: str, size: str, seed: int) -> RunSpec:
    """The run of a system before its learning rate is set (lr 0.01 as a placeholder)."""
    width, n_train, steps, every, _ = _SIZES[size]
    return RunSpec(
        model=ModelSpec(arch=arch, width=width, param="ntk", **_MODELS[arch]),
        data=data_spec(dataset, n_train, 64),
        optim=OptimSpec(name="gd", lr=0.01, steps=steps, loss="mse", eval_every=0, diverge_factor=1e6),
        probes=ProbeSpec(log_every=1, sharpness_every=every, sharpness_tol=1e-3, save_weights=False),
        seed=seed,
    )


def initial_sharpness(spec: RunSpec) -> float:
    """Top Hessian eigenvalue of the spec's initial model on its full training set."""
    import torch

    from ..curvature import top_eigenvalues
    from ..train import build_model, loss_function

    model, data = build_model(spec)
    dtype = next(model.parameters()).dtype
    x = data.x_train.to(dtype) if data.x_train.is_floating_point() else data.x_train
    y = data.targets(data.y_train, spec.optim.loss)
    y = y.to(dtype) if y.is_floating_point() else y
    # converged far below the 4 significant digits the learning rates are rounded to, so the specs (and their
    # keys, by which the gallery finds them) do not change with the eigensolver's path
    res = top_eigenvalues(model, loss_function(spec.optim.loss), x, y, k=1, tol=1e-7, max_iter=2000,
                          generator=torch.Generator().manual_seed(spec.seed))
    return float(res.values[0])


def classify(run) -> dict:
    """Phase of a run from its loss curve, c = eta S_0 / 2, the spike and the final sharpness x eta/2."""
    h = run.history
    nan = float("nan")
    out = {"phase": None, "c": nan, "lambda0": nan, "spike": nan, "final_ratio": nan}
    if run.status == "failed" or "loss" not in h or not len(h):
        return out
    lr = run.spec.optim.lr
    if "sharpness" in h:
        s = h.dropna(subset=["sharpness"])
        if len(s) and int(s["step"].iloc[0]) == 0:
            out["lambda0"] = float(s["sharpness"].iloc[0])
            out["c"] = lr * out["lambda0"] / 2.0
        if run.status == "ok" and len(s):
            out["final_ratio"] = float(s["sharpness"].iloc[-1]) * lr / 2.0
    loss = h["loss"].to_numpy(dtype=float)
    finite = np.isfinite(loss)
    running = np.minimum.accumulate(np.where(finite, loss, np.inf))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["spike"] = float(np.nanmax(np.where(finite, loss / running, np.inf)))
    if run.status == "diverged" or not finite[-1] or loss[-1] >= loss[0]:
        out["phase"] = "diverged"
    elif out["spike"] >= SPIKE_MIN:
        out["phase"] = "catapult"
    else:
        out["phase"] = "lazy"
    return out


def _boundary(rows, low: str, high: str) -> float:
    """Geometric mean of the largest c in phase `low` and the smallest c in phase `high`."""
    lo = [r["c"] for r in rows if r["phase"] == low and math.isfinite(r["c"])]
    hi = [r["c"] for r in rows if r["phase"] == high and math.isfinite(r["c"])]
    return math.sqrt(max(lo) * min(hi)) if lo and hi else float("nan")


def system_name(spec) -> str:
    return f"{spec.model.arch} {spec.model.activation} {display_name(spec.data.name)} seed {spec.seed}"


class Catapult(Phenomenon):
    name = "catapult"
    title = "Does a learning rate above 2/\u03bb\u2080 catapult the network to a flatter region instead of diverging?"
    direction = "hyperparameters"
    sources = ("Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari 2020, The large learning rate phase of deep "
               "learning: the catapult mechanism (arXiv:2003.02218)",)
    prediction = ("For a wide network with initial sharpness \u03bb\u2080: \u03b7 < 2/\u03bb\u2080 trains lazily, "
                  "2/\u03bb\u2080 < \u03b7 < \u03b7_max spikes the loss and lands where sharpness < 2/\u03b7, larger "
                  "\u03b7 diverges (\u03b7_max = 4/\u03bb\u2080 for the two-layer linear model); the first boundary "
                  f"sits at \u03b7\u03bb\u2080 = 2 \u00b1 {TOLERANCE:.0%}.")
    measures = ("Each run's loss curve (a rise of >= 10% above its running minimum is a spike) along a sweep "
                "of \u03b7 in units of 2/\u03bb\u2080, with \u03bb\u2080 the sharpness at step 0, for wide two-layer "
                "ReLU and linear networks in NTK parametrisation.")
    archs = ("mlp", "deep_linear")
    datasets = ("gaussian_mixture",)
    allowed_datasets = ("gaussian_mixture", "digits", "teacher_student", "linear_lowrank", "moons", "circles",
                        "spirals", "mnist", "fashion_mnist", "cifar10")
    upload_tasks = ("classification", "regression")
    normalisation = "loss / initial loss; \u03b7 in units of 2/\u03bb\u2080"

    def _specs(self, size, archs, datasets, seed=0):
        lambda0: dict[str, float] = {}  # local to this call: one measurement per (model, data, seed)
        out = []
        for arch in archs:
            for dataset in datasets:
                bases = reseed([base_spec(arch, dataset, size, s) for s in _SIZES[size][4]], seed)
                for base in bases:  # lr in units of 2/lambda_0 of this replicate's own initial model
                    key = base.key()
                    if key not in lambda0:
                        lambda0[key] = initial_sharpness(base)
                    for c in _C[size]:
                        out.append(base.replace(**{"optim.lr": float(f"{c * 2.0 / lambda0[key]:.4g}")}))
        return out

    def verdict(self, runs):
        rows = []
        for run in runs:
            m = classify(run)
            c, phase = m["c"], m["phase"]
            if phase is None or not math.isfinite(c):
                ok = False
            elif c < 1 - TOLERANCE:
                ok = phase == "lazy"
            elif c > 1 + TOLERANCE:
                ok = phase != "lazy" and (phase == "diverged" or m["final_ratio"] <= 1.0 + TOLERANCE)
            else:
                ok = None  # inside the predicted band: any phase is consistent
            rows.append(run_row(run, ok, c, system=system_name(run.spec), label=f"{system_name(run.spec)} c={c:.2f}",
                                **m))
        systems: dict[str, list[dict]] = {}
        for r in rows:
            systems.setdefault(r["system"], []).append(r)
        summaries, firsts = [], []
        all_ordered = bool(systems)
        for name, members in systems.items():
            members = sorted((r for r in members if r["phase"] and math.isfinite(r["c"])), key=lambda r: r["c"])
            index = [PHASES.index(r["phase"]) for r in members]
            ordered = bool(index) and all(a <= b for a, b in zip(index, index[1:])) and set(index) == {0, 1, 2}
            all_ordered &= ordered
            first = _boundary(members, "lazy", "catapult")
            second = _boundary(members, "catapult", "diverged")
            firsts.append(first)
            sequence = " ".join(f"{r['c']:.2g}:{r['phase'][0].upper()}" for r in members)
            summaries.append(f"{name}: {sequence} -> first boundary {first:.3g}, second {second:.3g}"
                             + ("" if ordered else " (phases missing or out of order)"))
        finite = [f for f in firsts if math.isfinite(f)]
        median = float(np.median(finite)) if finite else float("nan")
        passed = all_ordered and math.isfinite(median) and abs(median - 1.0) <= TOLERANCE
        text = (f"First boundary \u03b7\u03bb\u2080/2 = {median:.3f} (predicted 1 \u00b1 {TOLERANCE:g}); phases in order "
                f"lazy < catapult < diverged in {'every' if all_ordered else 'not every'} system. "
                "Sweeps (c = \u03b7\u03bb\u2080/2 : L = lazy, C = catapult, D = diverged): " + "; ".join(summaries) + ". "
                "The two-layer linear model predicts the second boundary at 2 (\u03b7_max = 4/\u03bb\u2080).")
        landed = [r for r in rows if r["phase"] == "catapult" and math.isfinite(r["final_ratio"])]
        if landed:
            text += (f" Catapult runs end at sharpness \u00d7 \u03b7/2 = "
                     f"{min(r['final_ratio'] for r in landed):.2f}-{max(r['final_ratio'] for r in landed):.2f}"
                     " (prediction: below 1).")
        seconds = [s for s in (_boundary(m, "catapult", "diverged") for m in systems.values()) if math.isfinite(s)]
        details = {"first_boundaries": {n: (f if math.isfinite(f) else None) for n, f in zip(systems, firsts)},
                   "all_ordered": all_ordered, "boundary_lazy_catapult": median,
                   "boundary_catapult_diverged": float(np.median(seconds)) if seconds else float("nan")}
        return Verdict(passed, median, 1.0, TOLERANCE, text, per_run=rows, details=details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_curvature as plots

        verdict = verdict if verdict is not None else self.verdict(runs)
        return [plots.catapult_phase_diagram(verdict, presentation),
                plots.catapult_curves(runs, verdict, normalised, presentation)]


PHENOMENON = Catapult()
