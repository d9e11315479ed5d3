"""Edge of stability: under full-batch GD the sharpness rises to 2/eta and hovers there (Cohen et al. 2021).

Systems. `mlp` stands for two architectures, a tanh and a ReLU MLP (64 wide, 3 hidden layers: the
ReLU net at depth 2 catapults below 2/eta on digits and stays there, see the catapult phenomenon);
`cnn` is a 2-layer ReLU CNN (8 channels). The CNN needs images: digits ships (8x8), mnist,
fashion_mnist and cifar10 work from disk; on vector datasets (gaussian_mixture) the CNN is skipped,
and asking only for CNNs on vector datasets is a ValueError.

Learning rates and length. Each run lasts the same time in eta x step units (`_HORIZON`), so smaller
rates run longer. Under MSE the rates are 0.2, 0.3, 0.4; cross-entropy curvature is smaller and its
rates are 0.3, 0.5, 0.7 on a harder task (gaussian_mixture with 10 overlapping classes), because
under cross-entropy the Hessian vanishes as the margins grow: once the training loss is tiny the
sharpness falls below 2/eta for every rate (Cohen et al. 2021 stop at 99% training accuracy). The
analysis window of a cross-entropy run therefore ends at the first logged step with training loss
below `CE_LOSS_FLOOR`; MSE runs use every step. `quick` runs every system under MSE with the three
rates cycled over the (architecture, dataset) pairs, plus the two MLPs under cross-entropy; `full` runs the whole grid.

Verdict (criteria fixed before the runs; the source gives no number, so the bands are ours and stated
here). The sentence tested is Cohen et al.'s abstract (`SOURCE`). Per run: the median of sharpness /
(2/eta) over the second half of the window ("hovers just above 2/eta": within `TOLERANCE` = 10% of 1).
Clauses: (1) the median over runs is within 10% of 1; (2) "typically": at least `MIN_FRACTION` = 2/3 of
the runs are; (3) "non-monotonically over short timescales": the loss, logged every step, rises at least
once in the window's second half, in >= 2/3 of the runs; (4) "consistently decreases over long
timescales": its mean over the last tenth of that half is below its mean over the first tenth, in >= 2/3
of the runs. Loss is logged every step (`log_every=1`) so that the period-2 oscillation is visible.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from ..data import display_name
from ..universality import normalise
from .base import Clause, Phenomenon, Source, Verdict, at_least, run_row, within
from .base import data_spec as sized_data

TOLERANCE = 0.10
MIN_FRACTION = 2 / 3
CE_LOSS_FLOOR = 0.1
MIN_POINTS = 4  # sharpness measurements needed in the second half of the window
IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")

# arch -> ((activation, width, depth), ...): each entry is one architecture of the grid
SYSTEMS = {"mlp": (("tanh", 64, 3), ("relu", 64, 3)), "cnn": (("relu", 8, 2),)}
_LRS = {"mse": (0.2, 0.3, 0.4), "ce": (0.3, 0.5, 0.7)}
_QUICK_ORDER = (0.2, 0.3, 0.4)  # quick: MSE rates cycled over (architecture, dataset) in that order
# size -> (n_train, eta x step horizon per loss, probe every, sharpness tol, width multiplier)
_SIZES = {
    "tiny": (64, {"mse": 40.0, "ce": 60.0}, 10, 1e-2, 1),
    "quick": (256, {"mse": 80.0, "ce": 100.0}, 10, 1e-2, 1),
    "full": (1024, {"mse": 300.0, "ce": 300.0}, 10, 1e-3, 2),
}


def data_spec(dataset: str, loss: str, n_train: int) -> DataSpec:
    """The dataset of a run: cross-entropy on gaussian_mixture uses 10 overlapping classes (not fit at once)."""
    extra = {"n_classes": 10, "separation": 1.5} if dataset == "gaussian_mixture" and loss == "ce" else {}
    return sized_data(dataset, n_train, 128, **extra)


def systems(archs, datasets) -> list[tuple[str, str, int, int, str]]:
    """(arch, activation, width, depth, dataset) for every architecture that can take each dataset."""
    out = [(a, act, w, d, ds) for a in archs for act, w, d in SYSTEMS[a] for ds in datasets
           if a != "cnn" or ds in IMAGE_DATASETS]
    if not out:
        raise ValueError(f"cnn needs an image dataset ({', '.join(IMAGE_DATASETS)}); got {', '.join(datasets)}")
    return out


def gd_spec(arch, act, width, depth, data: DataSpec, loss: str, lr: float, horizon: float, every: int,
            tol: float, **probes) -> RunSpec:
    """A full-batch GD run lasting `horizon` in eta x step units, sharpness every `every` steps."""
    steps = max(every, int(math.ceil(horizon / lr / every)) * every)
    return RunSpec(
        model=ModelSpec(arch=arch, width=width, depth=depth, activation=act),
        data=data,
        optim=OptimSpec(name="gd", lr=lr, steps=steps, loss=loss, eval_every=0),
        probes=ProbeSpec(log_every=1, sharpness_every=every, sharpness_tol=tol, save_weights=False, **probes),
    )


def window_end(history, spec) -> float:
    """Last step of the analysis window: the run's end, or for cross-entropy the first step with loss < floor."""
    end = float(history["step"].max()) if len(history) else 0.0
    if spec.optim.loss == "ce" and "loss" in history:
        low = history.loc[history["loss"] < CE_LOSS_FLOOR, "step"]
        if len(low):
            end = float(low.iloc[0])
    return end


def hover_ratio(run, column: str = "sharpness") -> tuple[float, int, float]:
    """(median of `column` / its stability threshold over the window's second half, points used, window end).

    The one measurement of both edge-of-stability phenomena: `sharpness` against 2/eta under GD,
    `precond_sharpness` against 38/eta under Adam (the threshold comes from `universality.normalise`).
    """
    if run.status == "failed" or column not in run.history:
        return float("nan"), 0, 0.0
    table = normalise(run.history, run.spec, column)
    end = window_end(run.history, run.spec)
    half = table[(table["step"] <= end) & (table["step"] >= end / 2)]
    if len(half) < MIN_POINTS:
        return float("nan"), len(half), end
    return float(np.median(half["y_norm"])), len(half), end


def eos_ratio(run) -> tuple[float, int, float]:
    """(median sharpness / (2/eta) over the window's second half, points used, window end step)."""
    return hover_ratio(run, "sharpness")


def loss_shape(run, end: float) -> tuple[int, float]:
    """(rises of the loss between consecutive logged steps, last-tenth mean / first-tenth mean) in the
    window's second half: the short-timescale non-monotonicity and the long-timescale decrease."""
    h = run.history
    if "loss" not in h or not len(h):
        return 0, float("nan")
    w = h[(h["step"] >= end / 2) & (h["step"] <= end)]["loss"].to_numpy(dtype=float)
    if len(w) < 10 or not np.isfinite(w).all():
        return 0, float("nan")
    tenth = max(len(w) // 10, 1)
    return int((np.diff(w) > 0).sum()), float(w[-tenth:].mean() / w[:tenth].mean())


def label(spec) -> str:
    """Short run label: architecture, activation, dataset, loss and rate."""
    m = spec.model
    return f"{m.arch} {m.activation} {display_name(spec.data.name)} {spec.optim.loss} \u03b7={spec.optim.lr:g}"


def ratio_verdict(runs, ratio_fn, threshold: str, quantity: str, loss_clauses: bool = False,
                  below_text: str = "catapulted under the threshold, or still sharpening",
                  subject: str = "the sharpness") -> Verdict:
    """The verdict of both edge-of-stability phenomena, clause by clause.

    Per run: the median ratio of the measured sharpness to its threshold over the window's second half,
    judged `within TOLERANCE of 1`. Clauses: the median over runs hovers at the threshold; it does so
    typically (at least MIN_FRACTION of the runs); with `loss_clauses` (Cohen et al. 2021) the loss
    rises between consecutive steps at least once in the window ("non-monotonically over short
    timescales") and its last-tenth mean is below its first-tenth mean ("consistently decreases over
    long timescales"), each in at least MIN_FRACTION of the runs. `subject` names what hovers in the first
    clause ("the sharpness"; Adam's preconditioned sharpness for adaptive EoS).
    """
    band = within(1.0, TOLERANCE, relative=True)
    typical = at_least(MIN_FRACTION)
    rows, ratios = [], []
    for run in runs:
        ratio, n_points, end = ratio_fn(run)
        ok = run.status == "ok" and band.holds(ratio)
        rises, fall = loss_shape(run, end) if loss_clauses else (0, float("nan"))
        ratios.append(ratio)
        extra = {"loss_rises": rises, "loss_end_over_start": fall} if loss_clauses else {}
        rows.append(run_row(run, ok, ratio, band, activation=run.spec.model.activation, loss=run.spec.optim.loss,
                            lr=run.spec.optim.lr, points=n_points, window_end=end, label=label(run.spec), **extra))
    if not rows:
        return Verdict.none("no runs to judge")
    finite = [r for r in ratios if math.isfinite(r)]
    median = float(np.median(finite)) if finite else float("nan")
    within_frac = sum(bool(r["passed"]) for r in rows) / len(rows)
    clauses = [
        Clause.judge(f"{subject} rises to {threshold} and hovers there", f"median over runs of {quantity}",
                     band, median),
        Clause.judge("typically: across architectures, datasets, losses and learning rates",
                     f"fraction of runs whose {quantity} is within {TOLERANCE:.0%} of 1", typical, within_frac),
    ]
    if loss_clauses:
        ok_runs = [r for r in rows if r["status"] == "ok"]
        n = max(len(rows), 1)
        clauses += [
            Clause.judge("the training loss behaves non-monotonically over short timescales",
                         "fraction of runs whose loss rises between consecutive steps at least once in the window",
                         typical, sum(r["loss_rises"] > 0 for r in ok_runs) / n),
            Clause.judge("yet consistently decreases over long timescales",
                         "fraction of runs whose loss over the window's last tenth is below its first tenth",
                         typical, sum(r["loss_end_over_start"] < 1 for r in ok_runs) / n),
        ]
    measured = [r for r in rows if r["measured"] is not None]
    below = [r["label"] + f" ({r['measured']:.2f})" for r in measured if r["measured"] < 1 - TOLERANCE]
    above = [r["label"] + f" ({r['measured']:.2f})" for r in measured if r["measured"] > 1 + TOLERANCE]
    missing = [r["label"] + f" ({r['status']}, {r['points']} points)" for r in rows if r["measured"] is None]
    archs = {(r["arch"], r["activation"]) for r in rows}
    text = (f"Median {quantity} over the second half of training = {median:.3f} across {len(rows)} runs "
            f"({len(archs)} architectures, {len({r['dataset'] for r in rows})} datasets, losses "
            f"{'/'.join(sorted({r['loss'] for r in rows}))}, {len({r['lr'] for r in rows})} learning rates); "
            f"{within_frac:.0%} of runs within \u00b1{TOLERANCE:.0%} of {threshold}.")
    if below:
        text += f" Stayed below ({below_text}): " + "; ".join(below) + "."
    if above:
        text += " Hovered above: " + "; ".join(above) + "."
    if missing:
        text += " No measurement: " + "; ".join(missing) + "."
    details = {"fraction_within": within_frac, "n_runs": len(rows),
               "min_ratio": float(min(finite)) if finite else float("nan"),
               "max_ratio": float(max(finite)) if finite else float("nan")}
    return Verdict.of(clauses, text, rows, details)


class EdgeOfStability(Phenomenon):
    name = "edge_of_stability"
    title = "Does sharpness stop at 2/\u03b7?"
    direction = "laws"
    sources = ("Cohen, Kaur, Li, Kolter & Talwalkar 2021, Gradient descent on neural networks typically occurs at "
               "the edge of stability (ICLR 2021)",)
    source = Source("Cohen, Kaur, Li, Kolter & Talwalkar 2021, abstract",
                    "In this regime, the maximum eigenvalue of the training loss Hessian hovers just above the value "
                    "2/(step size), and the training loss behaves non-monotonically over short timescales, yet "
                    "consistently decreases over long timescales.")
    prediction = ("Under full-batch gradient descent the sharpness $\\lambda_{\\max}(H)$ rises to $2/\\eta$ and "
                  "hovers there (median $\\lambda_{\\max}\\,\\eta/2$ over the second half of training within "
                  f"{TOLERANCE:.0%} of 1, in at least two thirds of the runs), while the loss rises and falls from "
                  "step to step yet keeps decreasing over longer stretches.")
    measures = ("The top Hessian eigenvalue of the full training loss every 10 steps (Lanczos, warm-started), "
                "divided by 2/\u03b7, for tanh and ReLU MLPs and a CNN, under MSE and cross-entropy, at three rates.")
    archs = ("mlp", "cnn")
    datasets = ("digits", "gaussian_mixture")
    allowed_datasets = ("digits", "gaussian_mixture", "mnist", "fashion_mnist", "cifar10")
    upload_tasks = ("classification",)
    normalisation = "sharpness / (2/\u03b7) against \u03b7 \u00d7 step"

    def _grid(self, size, archs, datasets):
        n_train, horizon, every, tol, mult = _SIZES[size]
        grid = systems(archs, datasets)
        out = []
        if size == "full":
            for arch, act, w, d, ds in grid:
                for loss in ("mse", "ce"):
                    for lr in _LRS[loss]:
                        out.append(gd_spec(arch, act, w * mult, d, data_spec(ds, loss, n_train), loss, lr,
                                           horizon[loss], every, tol))
            return out
        for i, (arch, act, w, d, ds) in enumerate(grid):  # MSE, the rates spread over the systems
            lr = _QUICK_ORDER[i % 3] if size == "quick" else 0.4
            out.append(gd_spec(arch, act, w, d, data_spec(ds, "mse", n_train), "mse", lr, horizon["mse"], every, tol))
        if size == "quick":  # cross-entropy on the MLPs of the last dataset given
            ce_ds = "gaussian_mixture" if "gaussian_mixture" in datasets else datasets[-1]
            for arch, act, w, d, ds in grid:
                if arch == "mlp" and ds == ce_ds:
                    out.append(gd_spec(arch, act, w, d, data_spec(ds, "ce", n_train), "ce", _LRS["ce"][0],
                                       horizon["ce"], every, tol))
        return out

    def verdict(self, runs):
        return ratio_verdict(runs, eos_ratio, "2/\u03b7", "sharpness / (2/\u03b7)", loss_clauses=True)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_curvature as plots

        figs = [plots.sharpness_overlay(runs, "sharpness", normalised, presentation),
                plots.loss_overlay(runs, normalised, presentation)]
        if verdict is not None:
            figs.append(plots.ratio_summary(verdict, "sharpness / (2/\u03b7)", "Does every run hover at 2/\u03b7?",
                                            TOLERANCE, presentation))
        return figs

PHENOMENON = EdgeOfStability()
