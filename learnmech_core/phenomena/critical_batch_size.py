"""Critical batch size: the steps/examples trade-off to a target loss and the gradient noise scale.

McCandlish et al. 2018: with the learning rate tuned for each batch size B, the steps S and examples
E = B S needed to reach a target loss obey (S / S_min - 1)(E / E_min - 1) = 1, i.e.
S(B) = S_min (1 + B_crit / B), and B_crit = E_min / S_min is predicted by the gradient noise scale
B_noise = tr(H Sigma) / (G^T H G).

Which B_noise. With the per-step optimal learning rate a step of batch B lowers the loss by
dL_max / (1 + B_noise / B), so S(B) = int dL (1 + B_noise(L) / B) / dL_max(L) = S_min + E_min / B with
S_min = int dL / dL_max and E_min = int B_noise dL / dL_max: the hyperbola holds for any B_noise(L),
and B_crit = E_min / S_min is B_noise averaged over the steps of the tuned full-batch (S_min) run.
It equals B_noise at the target only when B_noise is constant; here it grows ~20x from
initialisation to the target. The verdict therefore compares B_crit with `mean_to_target` of B_noise
along the tuned full-batch run: every full-batch run of the grid measures the noise scales, and the one
that reaches the target first is used (B_noise and B_simple = tr(Sigma) / |G|^2 at the target and at
initialisation are reported beside it, and so is the step mean along every full-batch run).

Our minibatches are drawn without replacement from n training examples, which scales the gradient
noise by (n - B) / (n - 1); the fit therefore uses S(B) = S_min + E_min (1 / B - 1 / n) n / (n - 1).
`NoiseScaleProbe` measures both noise scales on the whole training set (the set SGD samples) at every
step until the loss reaches the target (tr(H Sigma) by a Rademacher estimate over per-example
gradients, 16 HVPs; G^T H G by one HVP).

What the source claims, and the criteria (fixed before the runs of this version). McCandlish et al. 2018
(abstract, `SOURCE`): "a simple and easy-to-measure statistic called the gradient noise scale predicts the
largest useful batch size across many domains and applications", and "the noise scale increases as the loss
decreases over a training run". The prediction is made "at the order of magnitude level" (sections 2.6 and 3,
as read in ../shared/notes/measured.md); their Figure 1 caption: "The gradient noise scale (appropriately
averaged over training) explains the vast majority (R2 = 80%) of the variation in critical batch size over a
range of tasks spanning six orders of magnitude"; B_noise is measured in one run "with a well-optimized
learning rate" (A.1) and B_crit is fitted per target loss (A.3). Clauses:

1. the noise scale predicts B_crit: B_crit / (B_noise averaged over the steps of the tuned full-batch run to
   the target loss) within a factor `RATIO_TOLERANCE` = 10 of 1 (0.1-10), the source's order of magnitude. (An
   earlier version demanded a factor 2, which is in no paper.)
2. steps and examples trade off along the hyperbola: R^2 of the fit of log S(B) >= `R2_MIN` = 0.9 over >= 3
   batch sizes (ours, a priori; the paper says the relation fits "to good approximation" without a number).
3. the noise scale increases as the loss decreases: B_simple at the target / B_simple at initialisation along
   the tuned full-batch run >= 1 (B_simple = tr(Sigma)/|G|^2 is the estimator their training curves show).

The quick grid tries the 3 largest learning rates of the sqrt(2) grid 0.2-3.2 that each batch size allows (5
before this version): three seeds must each fit the 60 s budget, and the two smallest full-batch rates (0.8
and 1.13) were the most expensive runs (the noise-scale probe costs ~0.33 s a step and they need 17-24
steps to the target) and were never the tuned one. What it costs: the B_noise sweep over full-batch learning
rates now covers 1.6-3.2 only (the 10x spread between 0.8 and 2.26 is no longer shown at quick; it is in
`tried` and at full size), and a batch size whose best rate is the smallest it tried may have a better rate
below the window (the explanation names such batch sizes).

Measured at quick (this version; 24 runs a seed; 1 torch thread, load 7-13; CPU user + sys 21.2 / 22.9 / 21.2 s
for seeds 0 / 1 / 2, wall 58-171 s at that load; 49-57 s a seed on a quiet machine before, with 5 rates):

| seed | B_crit (R^2) | tuned lr | mean B_noise | B_crit / mean B_noise (0.1-10) | at target | B_simple target/init |
|---|---|---|---|---|---|---|
| 0 | 94.0 (0.995) | 2.26 | 38.7 | 2.43 | 0.556 | 10.2 |
| 1 | 109 (0.997) | 1.6 | 302 | 0.362 | 0.100 | 32.2 |
| 2 | 96.3 (0.998) | 1.6 | 607 | 0.159 | 0.041 | 35.5 |

Every clause holds on every seed. Seed 0's fit is the same as with 5 rates (S_min 11.3, E_min 1061): the
dropped rates were never the best. The step mean of B_noise still spans 4x-16x across seeds (which of lr 1.6
and 2.26 is tuned decides it, see below), so the ratio's agreement is at the order of magnitude only, as the
source states it; at the target the ratio is 0.04-0.56 (seed 2 would fail there). Batch sizes whose best
rate was the smallest of their three (a better one may lie below): 8, 16, 256, 512 (seed 0), 256, 512, 1024
(seed 1), 8, 16, 256, 512, 1024 (seed 2).

Measured before this version (digits MLP 64-64-64-10 tanh, n 1024, SGD, target loss 0.1, seed 0, 5 rates
per batch size 0.2-3.2): the hyperbola fits (R^2 0.995 over 8 batch sizes; S_min 11.3, E_min 1061, B_crit 94).
The tuned full-batch run (lr 2.26, target at step 12.1) averages B_noise 38.7 on the way (ratio 2.43). The
number is ill-conditioned:

| full-batch lr | steps to target | mean B_noise | B_crit / mean B_noise |
|---|---|---|---|
| 0.8 | 24.4 | 3,870 | 0.024 |
| 1.13 | 17.3 | 3,790 | 0.025 |
| 1.6 | 12.5 | 389 | 0.24 |
| 2.26 (tuned) | 12.1 | 38.7 | 2.43 |
| 2.0 (separate run) | 11.2 | 68.2 | 1.4 |
| 2.4 (separate run) | 10.4 | 48.9 | 1.9 |
| 2.8 and 3.2 | diverge | | |

Runs 3% apart in steps differ 10x in mean B_noise. Near the stability limit the gradient keeps a large
component along the sharpest Hessian directions, so G^T H G stays large and B_noise small; a slightly
smaller learning rate lets those directions relax and B_noise grows 100x. The exactly solvable model
in `learnmech_core.sgd_quadratic` (noiseless linear regression, Gaussian inputs, 1/k spectrum, d 64)
shows the same: full-batch lr 1.8 vs 1.9 reaches 5% of the initial loss in 16.6 vs 17.0 steps with
mean B_noise 93.6 vs 8.5 (tested). There, with the best constant learning rate of a fine grid, the
ratio is 1.07 (1/k spectrum), 1.19 (condition number 100), 1.66 (10), 2.4 (4) and 7.4 (isotropic,
where S_min < 1 step). Seeds 1 and 2 gave B_crit 88 / 101, tuned full-batch lr 1.6 / 2.26, mean B_noise
169 / 62.9, ratios 0.52 / 1.61 (at the target 0.13 / 0.70): B_crit is stable across seeds, which full-batch
lr wins (and so the mean B_noise) is not.

Earlier findings on this set-up:

- The issue's calibration (B_crit 168 vs B_noise 247, 0.68x) is reproduced as an artefact: on 256
  examples drawn from the 1024, the plain |mean gradient|^2 estimator reads B_simple 213-226 at the
  target where the whole training set gives 950 (same weights, loss 0.087). That estimator obeys
  1 / B_measured = 1 / B_true + (1 / 256 - 1 / n) n / (n - 1), so it cannot exceed ~340 here.
- Independent minibatches (with replacement across steps) instead of epochs: B_crit 119, ratio
  still far from 1 at lr 1.6: the epoch structure is not the cause.
- B << n (gaussian_mixture, dim 8, 4 classes, separation 6, n 4096, target 0.2, the `_SETUPS`
  entry kept for it): seed 0 gave B_crit 53 vs mean B_noise 45 (ratio 1.17) and seeds 1 and 2 gave
  0.31 and 0.22 with the coarse grid; S_min is only 2-5 steps there, so the result is fragile.
- At tiny size (digits, n 512, 3 batch sizes) the ratio is a three-point fit, not evidence.

No two-batch (McCandlish App. A) estimator is needed: SGD samples this training set, whose mean
gradient G and covariance are computed exactly from all n per-example gradients. (noise_scale's
`unbiased=True` alone subtracts tr(Sigma) / b as for an unlimited population; on 256 of the 1024
examples it read 1265 against the exact 950, because it ignores the without-replacement factor;
`population=n` applies that factor, 1 - b / n.)

Quick wall time before this version: 49 s for 38 runs (1 torch thread, quiet machine). The noise-scale probe
costs ~0.33 s a step on 1024 examples (per-example gradients and 17 HVPs) and stops once the target is reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..probes import Probe
from .base import Clause, Phenomenon, Source, Tried, Verdict, at_least, factor, run_row

RATIO_TOLERANCE = 10.0  # B_crit / B_noise within a factor of this (McCandlish et al.: the order of magnitude)
R2_MIN = 0.9  # fit quality of log S(B)
MIN_BATCHES = 3  # batch sizes that reach the target, for a fit
N_RADEMACHER = 16


class NoiseScaleProbe(Probe):
    """Simple (tr Sigma / |G|^2) and Hessian-weighted (tr(H Sigma) / G^T H G) gradient noise scales.

    Measures at every due step until the first one whose loss on the probe batch (the training set) is at
    or below the set-up's target loss, then stops: the verdict needs the noise scales only up to the target.
    """

    name = "noise_scales"
    columns = ("b_simple", "b_noise")

    def measure(self, ctx):
        from ..curvature import hvp_operator
        from ..noise import per_example_grads

        if ctx.state.get("noise_scales_done"):
            return {}, []
        model, x, y = ctx.model, ctx.inputs, ctx.targets
        op = hvp_operator(model, ctx.loss_fn, x, y)
        with torch.no_grad():
            loss = float(ctx.loss_fn(model(x), y))
        ctx.state["noise_scales_done"] = loss <= target_loss(ctx.spec.data.name)
        grads = torch.as_tensor(per_example_grads(model, ctx.loss_fn, x, y))
        n = grads.shape[0]
        mean = grads.mean(dim=0, dtype=torch.float64)
        # tr(Sigma) = (sum_i |g_i|^2 - n |mean|^2) / (n - 1), sums in float64 without forming the deviations
        sum_sq = float(torch.linalg.vector_norm(grads, dtype=torch.float64) ** 2)
        trace_sigma = (sum_sq - n * float(mean @ mean)) / (n - 1)
        dtype = op.dtype
        gHg = float(mean.to(dtype) @ op(mean.to(dtype)))
        # Rademacher probes v = sum_i z_i (g_i - mean) / sqrt(n - 1): E[v^T H v] = tr(H Sigma)
        gen = torch.Generator().manual_seed(int(ctx.spec.seed) * 100_003 + int(ctx.step))
        z = torch.randint(0, 2, (n, N_RADEMACHER), generator=gen, dtype=grads.dtype) * 2.0 - 1.0
        vs = (grads.T @ z).double() - mean[:, None] * z.sum(dim=0).double()
        vs = vs / math.sqrt(n - 1)
        trace_h_sigma = sum(float(v @ op(v)) for v in vs.T.to(dtype)) / N_RADEMACHER
        grad_sq = float(mean @ mean)
        return {"b_simple": trace_sigma / grad_sq if grad_sq > 0 else float("inf"),
                "b_noise": trace_h_sigma / gHg if gHg > 0 else float("nan")}, []


PROBE = "learnmech_core.phenomena.critical_batch_size:NoiseScaleProbe"


@dataclass(frozen=True)
class Setup:
    """One dataset's grid at one size."""

    n_train: int
    batches: tuple[int, ...]  # 0 = full batch
    lrs: tuple[float, ...]  # the learning-rate grid; batch B tries the top `lrs_per_batch` of those <= lr_cap sqrt(B)
    full_steps: int  # step budget at full batch (about 3 S_min or more)
    seeds: tuple[int, ...]
    target: float  # full training loss (cross-entropy) that defines "steps to target"
    lr_cap: float
    lrs_per_batch: int = 3
    b_crit_guess: float = 120.0  # sets each batch size's step budget (full_steps (1 + B_CRIT_GUESS x(B)))


_GM = dict(dim=8, n_classes=4, separation=6.0)  # gaussian_mixture generator settings (Bayes loss about 0.14)
_GRID_GM = (0.1, 0.2, 0.4, 0.8, 1.2)
_ROOT2_GRID = tuple(round(0.1 * 2 ** (k / 2), 4) for k in range(11))  # 0.1 ... 3.2 in factors of sqrt(2)
_SETUPS = {
    "gaussian_mixture": {
        "tiny": Setup(1024, (16, 64, 0), (0.2, 0.4, 0.8), 16, (0,), 0.2, 0.15, 2, 40.0),
        "quick": Setup(4096, (8, 16, 32, 64, 128, 256, 512, 0), _GRID_GM, 20, (0,), 0.2, 0.15, 3, 40.0),
        "full": Setup(16384, (4, 8, 16, 32, 64, 128, 256, 512, 1024, 0), tuple(0.1 * 2 ** (k / 2) for k in range(8)),
                      30, (0,), 0.2, 0.15, 5, 40.0),
    },
    "digits": {  # the memorisation regime (B up to n = 1024): see the docstring
        "tiny": Setup(512, (32, 128, 0), (0.4, 0.8, 1.6), 40, (0,), 0.1, 0.2),
        "quick": Setup(1024, (8, 16, 32, 64, 128, 256, 512, 0), _ROOT2_GRID[2:], 40, (0,), 0.1, 0.2, 3),
        "full": Setup(1536, (4, 8, 16, 32, 64, 128, 256, 512, 1024, 0), _ROOT2_GRID, 80, (0,), 0.1, 0.2, 11),
    },
}
_SETUPS["spirals"] = _SETUPS["digits"]
TARGET_LOSS = 0.1  # default target (digits); each set-up carries its own


def setup(dataset: str, size: str) -> Setup:
    """The grid of a dataset at a size."""
    return _SETUPS.get(dataset, _SETUPS["digits"])[size]


def target_loss(dataset: str) -> float:
    """The target full training loss of a dataset's set-up."""
    return setup(dataset, "quick").target


def batch_lrs(s: Setup, batch: int) -> list[float]:
    """Learning rates a batch size tries: the top `lrs_per_batch` grid values <= lr_cap sqrt(B)."""
    b = s.n_train if batch == 0 else batch
    ok = [v for v in s.lrs if v <= s.lr_cap * math.sqrt(b) * (1 + 1e-9)]
    return ok[-s.lrs_per_batch:]


def step_budget(batch: int, n: int, full_steps: int, guess: float = 120.0) -> int:
    """Steps given to a batch size: full_steps (about 3 S_min) times 1 + guess x(B)."""
    b = n if batch == 0 else batch
    return int(math.ceil(full_steps * (1.0 + guess * effective_inverse_batch(b, n))))


def effective_inverse_batch(batch: float, n: int) -> float:
    """(1/B - 1/n) n/(n-1): gradient-noise variance of a without-replacement minibatch, per unit of tr(Sigma).

    An unlimited population (n = inf) gives 1/B (0 for B = inf).
    """
    if math.isinf(n):
        return 1.0 / batch
    return (1.0 / batch - 1.0 / n) * n / (n - 1)


def steps_to_target(history, target: float = TARGET_LOSS) -> float:
    """First step where the full training loss reaches the target, interpolated in log loss (NaN if never)."""
    if "train_loss" not in history:
        return float("nan")
    h = history.dropna(subset=["train_loss"])
    return crossing_step(h["step"].to_numpy(dtype=float), h["train_loss"].to_numpy(dtype=float), target)


def crossing_step(steps: np.ndarray, loss: np.ndarray, target: float) -> float:
    """First step where loss <= target, interpolated linearly in log loss between measurements (NaN if never)."""
    hit = np.flatnonzero(loss <= target)
    if not len(hit):
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(steps[0])
    l0, l1 = math.log(max(loss[i - 1], 1e-300)), math.log(max(loss[i], 1e-300))
    frac = (l0 - math.log(target)) / (l0 - l1) if l0 > l1 else 1.0
    return float(steps[i - 1] + frac * (steps[i] - steps[i - 1]))


def fit_tradeoff(batches, steps, n: int) -> dict:
    """Fit S(B) = S_min + E_min x(B), x = effective_inverse_batch, by least squares in log S; with R^2 in log S."""
    from scipy.optimize import least_squares

    b, s = np.asarray(batches, dtype=float), np.asarray(steps, dtype=float)
    x = np.array([effective_inverse_batch(v, n) for v in b])
    if len(b) < 3:
        return {"s_min": float("nan"), "e_min": float("nan"), "b_crit": float("nan"), "r2": float("nan")}
    s_min0 = float(np.min(s))
    e_min0 = max(float(np.max((s - s_min0) / np.maximum(x, 1e-12))), 1.0)

    def residual(theta):
        return np.log(np.exp(theta[0]) + np.exp(theta[1]) * x) - np.log(s)

    sol = least_squares(residual, x0=[math.log(s_min0), math.log(e_min0)])
    s_min, e_min = float(np.exp(sol.x[0])), float(np.exp(sol.x[1]))
    log_s = np.log(s)
    ss_tot = float(np.sum((log_s - log_s.mean()) ** 2))
    r2 = 1.0 - float(np.sum(sol.fun**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {"s_min": s_min, "e_min": e_min, "b_crit": e_min / s_min, "r2": r2}


def value_at_loss(history, column: str, target: float = TARGET_LOSS) -> float:
    """A column interpolated (log-log, in the training loss) at the step where the loss crosses the target."""
    if column not in history or "train_loss" not in history:
        return float("nan")
    h = history.dropna(subset=[column, "train_loss"])
    h = h[(h[column] > 0) & np.isfinite(h[column])]
    if len(h) < 1:
        return float("nan")
    loss, value = h["train_loss"].to_numpy(dtype=float), h[column].to_numpy(dtype=float)
    below = np.flatnonzero(loss <= target)
    if not len(below):
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(value[0])
    u = (math.log(loss[i - 1]) - math.log(target)) / (math.log(loss[i - 1]) - math.log(loss[i]))
    return float(math.exp(math.log(value[i - 1]) + u * (math.log(value[i]) - math.log(value[i - 1]))))


def mean_to_target(history, column: str, target: float = TARGET_LOSS) -> float:
    """Step-average of a column from step 0 to where the training loss crosses the target (NaN if never).

    The column is interpolated linearly in steps between its measurements and averaged over the
    continuous interval [0, S], S = steps_to_target (trapezoid rule on the measured steps plus the
    interpolated end point). This is the noise scale that S(B) = S_min + E_min / B predicts for
    B_crit = E_min / S_min when B_noise changes along the way (see the module docstring).
    """
    if column not in history:
        return float("nan")
    s_end = steps_to_target(history, target)
    h = history.dropna(subset=[column])
    h = h[np.isfinite(h[column])]
    steps, value = h["step"].to_numpy(dtype=float), h[column].to_numpy(dtype=float)
    if not math.isfinite(s_end) or len(steps) == 0 or steps[0] > 0 or steps[-1] < s_end:
        return float("nan")
    if s_end == 0:
        return float(value[0])
    inside = steps < s_end
    xs = np.append(steps[inside], s_end)
    ys = np.append(value[inside], np.interp(s_end, steps, value))
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / s_end)


def is_noise_run(run) -> bool:
    """Whether a run measures the noise scales (every full-batch run of the grid does)."""
    return PROBE in run.spec.probes.extra


def analyse(runs) -> tuple[list[dict], list[dict]]:
    """(one fit per (arch, dataset, seed) group, per-run verdict rows)."""
    groups: dict[tuple, list] = {}
    for run in runs:
        s = run.spec
        groups.setdefault((s.model.arch, s.data.name, s.seed), []).append(run)
    rows: list[dict] = []
    return [_analyse_group(group, rows) for group in groups.values()], rows


def _ratio(b_crit: float, b: float) -> float:
    return b_crit / b if b > 0 and math.isfinite(b) else float("nan")


def _analyse_group(group, rows) -> dict:
    """Fit one group's steps-to-target, read its noise scales and append its per-run rows.

    The noise scales come from the tuned full-batch run, the one whose steps to target S_min counts: the
    noise-measuring (full-batch) run of the grid that reaches the target first.
    """
    n = group[0].spec.data.n_train
    target = target_loss(group[0].spec.data.name)
    best: dict[int, float] = {}
    best_lr: dict[int, float] = {}
    points, noise_runs = [], []
    for run in group:
        b = run.spec.optim.batch_size or n
        s = steps_to_target(run.history, target) if run.status == "ok" else float("nan")
        points.append((b, run.spec.optim.lr, s))
        if math.isfinite(s) and s < best.get(b, math.inf):
            best[b], best_lr[b] = s, run.spec.optim.lr
        if is_noise_run(run):
            noise_runs.append((s if math.isfinite(s) else math.inf, run.spec.optim.lr, run))
        else:
            rows.append(run_row(run, None, s, batch_size=b, lr=run.spec.optim.lr, steps_to_target=s))
    batches = sorted(best)
    fit = fit_tradeoff(batches, [best[b] for b in batches], n)
    noise_runs.sort(key=lambda t: (t[0], t[1]))
    noise = noise_runs[0][2] if noise_runs and math.isfinite(noise_runs[0][0]) else None
    nan = float("nan")
    h = noise.history if noise is not None else None
    b_simple = value_at_loss(h, "b_simple", target) if h is not None else nan
    b_noise = value_at_loss(h, "b_noise", target) if h is not None else nan
    mean_simple = mean_to_target(h, "b_simple", target) if h is not None else nan
    mean_noise = mean_to_target(h, "b_noise", target) if h is not None else nan
    init = h["b_simple"].dropna() if h is not None and "b_simple" in h else []
    b_init = float(init.iloc[0]) if len(init) else nan
    ratio = _ratio(fit["b_crit"], mean_noise)
    band = factor(1.0, RATIO_TOLERANCE)
    passed = band.holds(ratio)
    tried_lrs: dict[int, list[float]] = {}
    for b, lr, _s in points:
        tried_lrs.setdefault(int(b), []).append(lr)
    at_floor = [int(b) for b in batches if len(tried_lrs.get(int(b), [])) > 1 and best_lr[b] == min(tried_lrs[int(b)])]
    grid = np.geomspace(min(batches), max(batches), 200) if batches else np.array([])
    # every full-batch run: how the step mean of B_noise depends on its learning rate
    by_lr = [{"lr": lr, "steps": s, "b_noise_mean": mean_to_target(r.history, "b_noise", target), "run": r}
             for s, lr, r in sorted(noise_runs, key=lambda t: t[1])]
    for s, _lr, run in noise_runs:
        m = mean_to_target(run.history, "b_noise", target)
        rows.append(run_row(run, passed if run is noise else None, _ratio(fit["b_crit"], m), band if run is noise
                            else "", role="noise scale (tuned)" if run is noise else "noise scale", batch_size=n,
                            lr=run.spec.optim.lr, steps_to_target=s, b_noise_mean=m,
                            b_simple_mean=mean_to_target(run.history, "b_simple", target),
                            b_noise=value_at_loss(run.history, "b_noise", target), b_crit=fit["b_crit"], r2=fit["r2"]))
    s0 = group[0].spec
    return {**fit, "arch": s0.model.arch, "dataset": s0.data.name, "seed": s0.seed, "n_train": n, "target": target,
            "n_points": len(batches), "b_simple": b_simple, "b_noise": b_noise, "b_simple_init": b_init,
            "b_simple_mean": mean_simple, "b_noise_mean": mean_noise, "ratio": ratio,
            "ratio_simple": _ratio(fit["b_crit"], b_simple), "ratio_noise": _ratio(fit["b_crit"], b_noise),
            "ratio_simple_mean": _ratio(fit["b_crit"], mean_simple),
            "noise_steps": steps_to_target(h, target) if h is not None else nan,
            "noise_lr": noise.spec.optim.lr if noise is not None else nan, "by_lr": by_lr,
            "best_lr": {int(b): best_lr[b] for b in batches}, "passed": passed,
            "best_steps": {int(b): best[b] for b in batches}, "points": points, "noise_run": noise,
            "at_floor": at_floor, "fit_curve": {"batch": grid, "steps": fit["s_min"] + fit["e_min"] * np.array(
                [effective_inverse_batch(v, n) for v in grid])}, "simple_rise": _ratio(b_simple, b_init)}


class CriticalBatchSize(Phenomenon):
    name = "critical_batch_size"
    title = "Does the gradient noise scale predict the critical batch size?"
    direction = "hyperparameters"
    sources = ("McCandlish, Kaplan, Amodei & OpenAI Dota Team 2018, An empirical model of large-batch training",)
    source = Source("McCandlish, Kaplan, Amodei & OpenAI Dota Team 2018, An empirical model of large-batch "
                    "training, abstract",
                    "In this paper, we demonstrate that a simple and easy-to-measure statistic called the gradient "
                    "noise scale predicts the largest useful batch size across many domains and applications, "
                    "including a number of supervised learning datasets (MNIST, SVHN, CIFAR-10, ImageNet, Billion "
                    "Word), reinforcement learning domains (Atari and Dota), and even generative model training "
                    "(autoencoders on SVHN). We find that the noise scale increases as the loss decreases over a "
                    "training run and depends on the model size primarily through improved model performance.")
    tried = (
        Tried("The quick grid judged within a factor 2 (B_crit / mean B_noise; the factor is in no paper), 5 "
              "learning rates per batch size", "2.43 / 0.52 / 1.61 on seeds 0 / 1 / 2 (B_crit 94 / 88 / 101; tuned "
              "full-batch lr 2.26 / 1.6 / 2.26): seed 0 outside the factor 2; all inside the source's factor 10",
              "0, 1, 2"),
        Tried("Full-batch learning rates 0.8 and 1.13 as noise-scale runs (quick before this version)",
              "mean B_noise 3,870 and 3,790 (ratios 0.024 and 0.025) against 38.7 at the tuned 2.26, with steps to "
              "the target only 2x apart: B_noise hinges on the rate; dropped from quick to fit three seeds in the "
              "budget (they were never the tuned run), kept at full", "0"),
        Tried("|mean gradient|^2 on a probe batch of 256 of the 1,024 training examples (the issue's calibration, "
              "B_crit 168 vs B_noise 247, 0.68x)", "an artefact: that estimator reads B_simple 213-226 where the "
              "whole training set gives 950 and cannot exceed ~340 here; the probe now uses the whole set", "0"),
        Tried("Independent minibatches (with replacement across steps) instead of epochs, lr 1.6",
              "B_crit 119; the ratio stays far from 1: the epoch structure is not the cause", "0"),
        Tried("gaussian_mixture (dim 8, 4 classes, separation 6, n 4,096, target 0.2; B << n), coarse lr grid",
              "ratio 1.17 on seed 0, 0.31 and 0.22 on seeds 1 and 2; S_min only 2-5 steps, fragile (kept as a "
              "selectable dataset)", "0, 1, 2"),
        Tried("The full lr grid at every batch size (digits)", "B_crit moved only 95 -> 102", "0"),
    )
    prediction = ("With the learning rate tuned per batch size, steps $S$ and examples $E$ to reach the target loss "
                  "satisfy $(S/S_{\\min} - 1)(E/E_{\\min} - 1) = 1$ (fit $R^2 \\geq 0.9$), "
                  "$B_{\\mathrm{crit}} = E_{\\min}/S_{\\min}$ equals the Hessian-weighted gradient noise scale "
                  "$B_{\\mathrm{noise}}$ averaged over the steps of the tuned full-batch run to the target within a "
                  f"factor of {RATIO_TOLERANCE:g} (0.1\u201310\u00d7), and the noise scale grows as the loss falls "
                  "($B_{\\mathrm{simple}}$ at the target $\\geq$ at initialisation).")
    measures = ("Steps to the target full training loss for each batch size (best over a learning-rate grid), the "
                "fitted S_min and E_min, and the noise scales tr(H Sigma)/G^T H G and tr(Sigma)/|G|^2 on the whole "
                "training set at every step of a full-batch run, averaged over its steps to the target (also read "
                "at the target and at initialisation).")
    archs = ("mlp",)
    datasets = ("digits",)
    allowed_archs = ("mlp", "cnn", "resnet")
    allowed_datasets = ("digits", "gaussian_mixture", "spirals")
    normalisation = "S / S_min and E / E_min"

    def _grid(self, size, archs, datasets):
        out = []
        for arch in archs:
            for dataset in datasets:
                st = setup(dataset, size)
                extra = _GM if dataset == "gaussian_mixture" else {}
                for seed in st.seeds:
                    base = RunSpec(
                        model=ModelSpec(arch=arch, width=64, depth=3, activation="tanh"),
                        data=DataSpec(name=dataset, n_train=st.n_train, n_test=256, **extra),
                        optim=OptimSpec(name="sgd", lr=1.0, steps=st.full_steps, loss="ce", eval_every=1,
                                        diverge_factor=3.0),
                        probes=ProbeSpec(log_every=1, save_weights=False),
                        seed=seed,
                    )
                    for batch in st.batches:
                        steps = step_budget(batch, st.n_train, st.full_steps, st.b_crit_guess)
                        noise = {"probes.extra": (PROBE,), "probes.extra_every": 1} if batch == 0 else {}
                        for lr in batch_lrs(st, batch):
                            out.append(base.replace(**{"optim.batch_size": batch, "optim.lr": lr,
                                                       "optim.steps": steps, **noise}))
        return out

    def verdict(self, runs):
        fits, rows = analyse(runs)
        if not fits:
            return Verdict.none("no runs to judge")
        band = factor(1.0, RATIO_TOLERANCE)  # the group farthest from 1 (in log) is judged
        ratio = max((f["ratio"] for f in fits), key=lambda r: abs(math.log(r)) if r > 0 and math.isfinite(r)
                    else math.inf)
        r2 = min((f["r2"] if f["n_points"] >= MIN_BATCHES and math.isfinite(f["r2"]) else -math.inf) for f in fits)
        rise = min((f["simple_rise"] if math.isfinite(f["simple_rise"]) else -math.inf) for f in fits)
        clauses = [
            Clause.judge("the gradient noise scale predicts the critical batch size (to an order of magnitude)",
                         "B_crit / B_noise averaged over the tuned full-batch run to the target", band, ratio),
            Clause.judge("steps and examples to the target trade off along (S/S_min - 1)(E/E_min - 1) = 1",
                         f"R^2 of the fit of log S(B) (needs >= {MIN_BATCHES} batch sizes)", at_least(R2_MIN), r2),
            Clause.judge("the noise scale increases as the loss decreases",
                         "B_simple at the target / at initialisation, along the tuned full-batch run", at_least(1.0),
                         rise),
        ]
        parts = []
        for f in fits:
            sweep = ", ".join(f"lr {e['lr']:.3g}: {e['b_noise_mean']:.3g} (S {e['steps']:.3g})" for e in f["by_lr"]
                              if math.isfinite(e["steps"]))
            floor = (f" Batch sizes whose best rate is the smallest they tried (a better one may lie below): "
                     f"{', '.join(map(str, f['at_floor']))}." if f["at_floor"] else "")
            parts.append(
                f"{f['arch']}/{f['dataset']} (n {f['n_train']}, target loss {f['target']:g}) seed {f['seed']}: "
                f"S_min = {f['s_min']:.3g} steps, E_min = {f['e_min']:.4g} examples, B_crit = {f['b_crit']:.3g} "
                f"(fit R^2 {f['r2']:.3f} over {f['n_points']} batch sizes). Along the tuned full-batch run (lr "
                f"{f['noise_lr']:.3g}, target at step {f['noise_steps']:.3g}) mean B_noise = "
                f"{f['b_noise_mean']:.4g} (B_crit/mean B_noise = {f['ratio']:.3g}), mean B_simple = "
                f"{f['b_simple_mean']:.4g} (ratio {f['ratio_simple_mean']:.3g}); at the target B_noise = "
                f"{f['b_noise']:.4g} (ratio {f['ratio_noise']:.3g}), B_simple = {f['b_simple']:.4g} (ratio "
                f"{f['ratio_simple']:.3g}); at initialisation B_simple = {f['b_simple_init']:.3g}. Mean B_noise "
                f"along each full-batch run that reached the target: {sweep}.{floor}"
            )
        word = "within" if clauses[0].passed else "not within"
        explanation = (" ".join(parts) + f" B_crit / mean B_noise is {word} a factor {RATIO_TOLERANCE:g} of 1 (fit R^2 "
                       f"needs >= {R2_MIN:g}).")
        means = [e["b_noise_mean"] for f in fits for e in f["by_lr"] if math.isfinite(e["steps"])
                 and math.isfinite(e["b_noise_mean"]) and e["b_noise_mean"] > 0]
        if len(means) >= 2 and max(means) / min(means) >= 3.0:
            explanation += (f" Mean B_noise differs {max(means) / min(means):.3g}x between full-batch runs that all "
                            "reach the target, so the prediction hinges on which learning rate counts as tuned: near "
                            "the stability limit the gradient stays in the sharpest directions (G^T H G large) and "
                            "B_noise small. The exactly solvable linear-regression model (learnmech_core.sgd_quadratic)"
                            " shows the same.")
        keys = ("s_min", "e_min", "b_crit", "r2", "b_simple", "b_noise", "b_simple_mean", "b_noise_mean", "ratio",
                "ratio_simple", "ratio_noise", "ratio_simple_mean", "b_simple_init", "noise_steps", "noise_lr",
                "target", "simple_rise")
        details = {k: fits[0][k] for k in keys}
        details["b_noise_mean_by_lr"] = {f"{e['lr']:g}": e["b_noise_mean"] for e in fits[0]["by_lr"]}
        details["best_steps"] = {str(b): v for b, v in fits[0]["best_steps"].items()}
        details["best_lr"] = {str(b): v for b, v in fits[0]["best_lr"].items()}
        return Verdict.of(clauses, explanation, rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_laws as plots

        fits, _ = analyse(runs)
        return [plots.critical_tradeoff(fits, normalised, presentation),
                plots.critical_steps(fits, presentation),
                plots.critical_noise(fits, presentation)]


PHENOMENON = CriticalBatchSize()
