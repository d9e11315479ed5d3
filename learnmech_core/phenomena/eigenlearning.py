"""Kernel learning curves from eigenvalues alone (eigenlearning), with empirical NTKs of wide networks.

What a run is: one network at initialisation (NTK parametrisation) per architecture and activation,
i.e. one kernel, its empirical NTK on a finite input domain of M points of the dataset (the uniform
measure on them: the eigensystem is then exact). The run trains a single GD step, which does not matter:
a probe of this phenomenon measures everything at step 0 (see `eigenlearning_probe`): the kernel's
eigenvalues, the target's power per eigenmode, the test MSE of kernel ridge regression from n = 10
to M/8 random training points over the whole domain (the theory is for n << M), and, on the same
training sets, the learnability of eigenfunctions at geometrically spaced mode indices. Kernel
regression with the NTK is what an infinitely wide network trained in the lazy regime computes (Jacot
et al. 2018); `lazy_vs_rich` checks that wide NTK-parametrised networks do stay lazy. Trained finite
networks are not part of this test.

Source (`source`): Simon, Dickens & DeWeese, arXiv 2110.03922v1 (2021), abstract: the theory "accurately
predicts not only test mean-squared-error but all first- and second-order statistics of the network's
learned function" (later versions, with Karkada, are titled "The eigenlearning framework"; their abstract
calls the results "closed-form estimates"). The paper gives no tolerance. Clauses, criteria fixed here
before the runs of this rewrite:
1. Test MSE: at every n of every kernel the predicted test MSE E0 sum_i (1 - L_i)^2 v_i^2 is within 10%
   (`REL_TOL`) of the measured mean. 10% was this module's tolerance before; the alternative "or R^2 of
   log test MSE >= 0.95" that let a kernel pass without it is gone (R^2 is still reported).
2. First-order statistics: the mean learned function's coefficient on each eigenfunction is L_i times
   the target's, i.e. the learnability of phi_i is L_i = lambda_i / (lambda_i + kappa): at every n and
   every measured mode, |measured mean - L_i| exceeds two Monte Carlo standard errors by at most 0.05
   (`LEARN_TOL`; learnabilities lie in [0, 1]).
3. The claim is about kernels in general, so it is tested on at least 2 kernels (ReLU and tanh NTKs
   of an MLP and a ResNet by default).

Measured limits (teacher_student, 8-D, earlier stops): ReLU NTKs stay within 7% of the prediction up to
n = 512 (M = 4096); smooth tanh NTKs fall behind it as n grows whatever M, by about 9% at n = 300 and 20%
at n = 512 (M = 2048 and 4096); beyond n = M/4 the finite domain itself shows (25-30% at n = M/2.5). The
grid therefore stops at n = M/8. Quick before this rewrite (seeds 0, 1, 2): largest relative error 9.6%
/ 11.2% / 11.5% (MLP ReLU NTK at n = 89, 43, 128; the measured error is above the prediction at most n),
R^2 of log test MSE >= 0.98 everywhere: it passed seeds 1 and 2 only through the R^2 alternative.

Measured at quick with these clauses (seeds 0, 1, 2; 1 torch thread, load average 12-14 on 2 cores:
33 s CPU, 128 s wall for the three seeds): test MSE 9.6% / 11.2% / 11.5% (fails on seeds 1 and 2:
MLP ReLU NTK, and on seed 2 also MLP tanh 10.8% at n = 10 and ResNet tanh 10.0%); learnability error
beyond two standard errors 0.018 / 0.036 / 0.027 (holds); 4 kernels. The test-MSE clause fails at quick.
The instrument is not the cause: on a kernel with Gaussian eigenfunctions (the theory's universality
assumption; M = 1024, power-law spectrum) the same probe code and theory agree within 0.7% at every n
(tested at M = 256), while ReLU random features on Gaussian inputs miss by up to 9.7% (n = 62), like the
ReLU NTKs here: the estimate's error is the kernels' non-Gaussian eigenfunctions.
"""

from __future__ import annotations

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..data import describe, display_name
from .base import Clause, Phenomenon, Source, Tried, Verdict, at_least, at_most, largest, run_row
from .eigenlearning_theory import learnabilities, learning_curve, solve_kappa

PROBE = "learnmech_core.phenomena.eigenlearning_probe:EigenlearningProbe"
REL_TOL = 0.10  # test MSE: relative error at every n
LEARN_TOL = 0.05  # learnability: absolute error beyond two standard errors
MIN_KERNELS = 2
ACTIVATIONS = ("relu", "tanh")
SIZE_SETTINGS = {
    # domain size M, widths per architecture
    "tiny": (256, {"mlp": 64, "resnet": 16}),
    "quick": (1024, {"mlp": 256, "resnet": 32}),
    "full": (8192, {"mlp": 1024, "resnet": 128}),  # n up to 1024
}


def curves(run) -> dict | None:
    """Stored eigenvalues, target power, measured curve (n, mean, se), learnabilities and ridge; None when
    missing. `learn` (n x modes), `learn_se` and `modes` are empty when the run has no learnability rows."""
    sp = run.spectra
    if sp is None or not len(sp):
        return None

    def kind(name, layer="ntk"):
        rows = sp[(sp["kind"] == name) & (sp["layer"] == layer)].sort_values("index")
        return rows["index"].to_numpy(int), rows["value"].to_numpy(float)

    _, lam = kind("kernel_eigenvalue")
    _, power = kind("target_power")
    ns, mse = kind("krr_test_mse")
    _, se = kind("krr_test_mse_se")
    ridge = run.history["eig_ridge"].dropna() if "eig_ridge" in run.history else []
    if not len(lam) or len(lam) != len(power) or not len(ns) or not len(ridge):
        return None
    learn, learn_se, modes = [], [], np.zeros(0, int)
    for n in ns:
        modes, values = kind("learnability", f"ntk n={n}")
        learn.append(values)
        learn_se.append(kind("learnability_se", f"ntk n={n}")[1])
    shaped = len(modes) and all(len(v) == len(modes) for v in learn + learn_se)
    return {"eigenvalues": lam, "power": power, "n": ns, "measured": mse, "se": se, "ridge": float(ridge.iloc[0]),
            "modes": modes if shaped else np.zeros(0, int),
            "learn": np.array(learn) if shaped else np.zeros((len(ns), 0)),
            "learn_se": np.array(learn_se) if shaped else np.zeros((len(ns), 0))}


def comparison(run) -> dict:
    """Predicted vs measured test MSE per n (relative errors, R^2 on log scale, informational) and predicted vs
    measured learnability of the measured eigenmodes (its error beyond two standard errors)."""
    nan = float("nan")
    c = curves(run)
    if c is None:
        return {"max_rel": nan, "mean_rel": nan, "r2_log": nan, "learn_excess": nan, "n": [], "predicted": [],
                "measured": [], "se": []}
    pred = learning_curve(c["eigenvalues"], c["power"], c["n"], c["ridge"])
    meas = c["measured"]
    rel = pred / meas - 1.0
    lm, lp = np.log(meas), np.log(pred)
    r2 = float(1.0 - np.sum((lm - lp) ** 2) / np.sum((lm - lm.mean()) ** 2))
    learn_pred = np.array([learnabilities(c["eigenvalues"], solve_kappa(c["eigenvalues"], n, c["ridge"]))[c["modes"]]
                           for n in c["n"]]) if len(c["modes"]) else np.zeros((len(c["n"]), 0))
    excess = np.abs(c["learn"] - learn_pred) - 2 * c["learn_se"]
    return {"max_rel": float(np.max(np.abs(rel))), "mean_rel": float(np.mean(np.abs(rel))), "r2_log": r2,
            "learn_excess": float(np.max(excess)) if excess.size else nan,
            "learn_max_abs": float(np.max(np.abs(c["learn"] - learn_pred))) if excess.size else nan,
            "n": c["n"], "predicted": pred, "measured": meas, "se": c["se"], "modes": c["modes"],
            "learn": c["learn"], "learn_se": c["learn_se"], "learn_pred": learn_pred,
            "power_total": float(np.sum(c["power"])), "eigenvalues": c["eigenvalues"],
            "kappa_last": solve_kappa(c["eigenvalues"], int(c["n"][-1]), c["ridge"])}


def kernel_name(spec: RunSpec) -> str:
    """A readable kernel label: the network whose NTK it is."""
    m = spec.model
    return f"NTK {m.arch} {m.activation} w={m.width} d={m.depth}"


def figure_summary(runs) -> dict:
    """What the figures draw: per kernel its measured and predicted curves, learnabilities and spectrum."""
    kernels = []
    for run in runs:
        c = comparison(run)
        if not len(c["n"]):
            continue
        kernels.append({"spec": run.spec, "label": f"{kernel_name(run.spec)} / {display_name(run.spec.data.name)}",
                        **{k: c[k] for k in ("n", "measured", "se", "predicted", "r2_log", "max_rel", "modes", "learn",
                                             "learn_se", "learn_pred", "power_total", "eigenvalues", "kappa_last")}})
    return {"kernels": kernels, "rel_tol": REL_TOL, "learn_tol": LEARN_TOL}


class Eigenlearning(Phenomenon):
    name = "eigenlearning"
    title = "Can a kernel's eigenvalues alone predict its learning curve?"
    direction = "solvable"
    sources = ("Simon, Dickens, Karkada & DeWeese 2023, The eigenlearning framework: a conservation law perspective on "
               "kernel ridge regression and wide neural networks",
               "Bordelon, Canatar & Pehlevan 2020, Spectrum dependent learning curves in kernel regression and wide "
               "neural networks", "Canatar, Bordelon & Pehlevan 2021, Spectral bias and task-model alignment explain "
               "generalization in kernel regression and infinitely wide neural networks")
    source = Source("Simon, Dickens & DeWeese 2021, Neural tangent kernel eigenvalues accurately predict "
                    "generalization (arXiv 2110.03922v1, abstract; later versions: The eigenlearning framework)",
                    "Our theory accurately predicts not only test mean-squared-error but all first- and second-order "
                    "statistics of the network's learned function.")
    tried = (
        Tried("quick (M = 1024 points, n = 10-128, ReLU and tanh NTKs of a width-256 MLP and a width-32 ResNet), "
              "judged by 'within 10% at every n OR R\u00b2 of log test MSE \u2265 0.95'",
              "largest relative error 9.6% / 11.2% / 11.5% on seeds 0 / 1 / 2 (MLP ReLU NTK; measured above "
              "predicted at most n); seeds 1 and 2 passed only through the R\u00b2 alternative, which is no "
              "longer part of the criterion", seeds="0, 1, 2"),
    )
    prediction = ("Kernel regression's test MSE at $n$ samples is $E_0 \\sum_i (1 - L_i)^2 v_i^2$ with "
                  "$L_i = \\lambda_i / (\\lambda_i + \\kappa)$, $\\sum_i L_i + \\delta/\\kappa = n$ and "
                  "$E_0 = n / (n - \\sum_i L_i^2)$: within 10% of the measured mean at every $n$, for every kernel "
                  "(at least two); and the learnability of each eigenfunction is $L_i$ (within 0.05 beyond two "
                  "standard errors of its measured mean).")
    measures = ("The empirical NTK of freshly initialised networks on $M$ points of the dataset, its exact eigensystem "
                "on them, the measured test MSE of kernel ridge regression from $n = 10$ to $M/8$ random samples, "
                "and the learnability of eigenfunctions fitted on the same samples.")
    archs = ("mlp", "resnet")
    datasets = ("teacher_student",)
    allowed_datasets = ("teacher_student", "digits", "gaussian_mixture", "moons", "circles", "spirals")
    normalisation = "test MSE divided by the target's power E[f^2] (the error of predicting zero)"

    def _grid(self, size, archs, datasets):
        m_size, widths = SIZE_SETTINGS[size]
        specs = []
        for arch in archs:
            for dataset in datasets:
                available = describe(DataSpec(name=dataset)).n_available
                m = m_size if available is None else min(m_size, available - 64)
                for act in ACTIVATIONS:
                    specs.append(RunSpec(
                        model=ModelSpec(arch=arch, width=widths[arch], depth=1, activation=act, param="ntk"),
                        data=DataSpec(name=dataset, n_train=m, n_test=64, dim=8),
                        optim=OptimSpec(name="gd", lr=1e-3, steps=1, loss="mse", eval_every=0),
                        probes=ProbeSpec(log_every=1, extra=(PROBE,), extra_every=1, save_weights=False),
                    ))
        return specs

    def verdict(self, runs) -> Verdict:
        mse_c, learn_c, count_c = at_most(REL_TOL), at_most(LEARN_TOL), at_least(MIN_KERNELS)
        rows, notes, rels, excess = [], [], [], []
        for run in runs:
            c = comparison(run)
            name, data = kernel_name(run.spec), display_name(run.spec.data.name)
            rels.append(c["max_rel"])
            excess.append(c["learn_excess"])
            rows.append(run_row(run, mse_c.holds(c["max_rel"]) and learn_c.holds(c["learn_excess"]), c["max_rel"],
                                mse_c, kernel=name, quantity="largest |predicted / measured test MSE - 1| over n",
                                r2_log=c["r2_log"], mean_rel_error=c["mean_rel"],
                                learnability_excess=c["learn_excess"], learnability_max_abs=c.get("learn_max_abs")))
            if np.isfinite(c["max_rel"]):
                notes.append(f"{name} on {data}: test MSE relative error mean {c['mean_rel']:.1%} max "
                             f"{c['max_rel']:.1%} over n = {c['n'][0]}..{c['n'][-1]} (R\u00b2 log {c['r2_log']:.3f}); "
                             f"learnability error beyond 2 SE {c['learn_excess']:.3f}")
            else:
                notes.append(f"{name} on {data}: no kernel-regression data ({run.status})")
        if not rows:
            return Verdict.none("No runs to judge.")
        clauses = [
            Clause.judge("the eigenvalues predict the test MSE at every $n$", "largest |predicted / measured test MSE "
                         "- 1| over n and kernels", mse_c, largest(rels)),
            Clause.judge("... and the first-order statistics: each eigenfunction's learnability is "
                         "$\\lambda_i / (\\lambda_i + \\kappa)$",
                         "largest |measured - predicted learnability| beyond two standard errors, over modes, n and "
                         "kernels", learn_c, largest(excess)),
            Clause.judge("for kernels in general", "kernels with a measured learning curve", count_c,
                         float(sum(np.isfinite(r) for r in rels))),
        ]
        failing = [c for c in clauses if not c.passed]
        lead = (f"The eigenvalues predict the learning curves of {len(rows)} kernels. " if not failing else
                f"{len(failing)} of {len(clauses)} clauses miss the prediction. ")
        details = {"kernels": len(rows), "worst_max_rel_error": largest(rels), "worst_learnability_excess":
                   largest(excess), "worst_r2_log": min((r["r2_log"] for r in rows), default=float("nan"))}
        return Verdict.of(clauses, lead + "; ".join(notes) + ".", rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_solvable as plots

        summary = figure_summary(runs)
        return [plots.eigenlearning_curve_figure(summary, normalised, presentation),
                plots.eigenlearning_learnability_figure(summary, presentation),
                plots.eigenlearning_spectrum_figure(summary, presentation)]


PHENOMENON = Eigenlearning()
