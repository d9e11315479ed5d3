"""muP hyperparameter transfer: the best learning rate stays put across width under muP and drifts under SP.

Runs: a 3-layer ReLU MLP (`mlp`, depth 2) trained with Adam (minibatch 128) at every learning rate of a
factor-2 grid, for 4-6 widths, in SP and in muP (base width = the narrowest width, where both coincide).
The training loss of a run is the mean logged minibatch loss over its last 20% of steps (less noisy than
one final value). A probe of this phenomenon records the coordinate check: the RMS size of every
layer's output on 256 training examples.

Verdict, from those numbers: (1) across widths the muP argmin learning rate moves by at most one grid
step (a factor 2); (2) the loss-vs-lr curves of different widths agree more closely under muP than under
SP (spread = mean over learning rates of the standard deviation across widths of log loss); (3) at the
learning rate that is best for the base width, the coordinate check is flat under muP (log-log slope of
every layer's activation size against width within +-0.25 of 0) and grows faster under SP.
"""

from __future__ import annotations

import numpy as np

from ..config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from .base import Phenomenon, Verdict, data_spec, minibatch, run_row

PROBE = "learnmech_core.phenomena.mup_transfer_probe:CoordCheckProbe"
ARGMIN_TOL = 1.0  # grid steps (factor 2)
COORD_TOL = 0.25
TAIL = 0.2  # fraction of steps averaged for a run's training loss
SIZE_SETTINGS = {
    # widths, log2 learning rates, steps, n_train, batch
    "tiny": ((16, 32, 64, 128), (-6, -5, -4), 24, 256, 64),
    "quick": ((32, 64, 128, 256), (-9, -8, -7, -6, -5, -4), 60, 1024, 128),
    "full": ((64, 128, 256, 512, 1024, 2048), tuple(range(-12, -2)), 300, 1500, 128),
}


def _floats(values) -> list:
    """A JSON-safe list: floats, None for NaN."""
    return [float(v) if np.isfinite(v) else None for v in values]


def tail_loss(run) -> float:
    """Mean logged training loss over the last 20% of steps (NaN unless the run finished)."""
    h = run.history
    if run.status != "ok" or not len(h):
        return float("nan")
    tail = h[h["step"] >= (1 - TAIL) * run.spec.optim.steps]["loss"].dropna()
    return float(tail.mean()) if len(tail) else float("nan")


def loss_table(runs) -> dict:
    """{(param, arch, dataset): (widths, log2 lrs, loss matrix widths x lrs)} (NaN where missing or diverged)."""
    cells: dict = {}
    for run in runs:
        key = (run.spec.model.param, run.spec.model.arch, run.spec.data.name)
        cells.setdefault(key, {})[(run.spec.model.width, float(np.log2(run.spec.optim.lr)))] = tail_loss(run)
    out = {}
    for key, table in cells.items():
        widths = sorted({w for w, _ in table})
        lrs = sorted({lr for _, lr in table})
        out[key] = (np.array(widths), np.array(lrs),
                    np.array([[table.get((w, lr), np.nan) for lr in lrs] for w in widths], dtype=float))
    return out


def argmin_lrs(lrs: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """log2 of the best learning rate per width (a diverged or missing run counts as worst)."""
    filled = np.where(np.isfinite(losses), losses, np.inf)
    best = np.argmin(filled, axis=1)
    return np.where(np.isfinite(filled.min(axis=1)), lrs[best], np.nan)


def curve_spread(losses: np.ndarray) -> float:
    """Mean over learning rates of the std across widths of log loss (learning rates where all widths finished)."""
    logs = np.log(losses)
    ok = np.all(np.isfinite(logs), axis=0)
    return float(np.mean(np.std(logs[:, ok], axis=0))) if ok.any() else float("nan")


def coord_slopes(runs, param: str, arch: str, dataset: str, log2_lr: float) -> tuple[np.ndarray, dict]:
    """Per layer, the log-log slope of activation size against width at one learning rate; and the sizes."""
    chosen = sorted((r for r in runs
                     if (r.spec.model.param, r.spec.model.arch, r.spec.data.name) == (param, arch, dataset)
                     and np.isclose(np.log2(r.spec.optim.lr), log2_lr) and r.status == "ok"),
                    key=lambda r: r.spec.model.width)
    if len(chosen) < 3:
        return np.array([]), {}
    cols = sorted((c for c in chosen[0].history.columns if c.startswith("coord_") and not c.startswith("coord_delta")),
                  key=lambda c: int(c.split("_")[1]))
    widths = np.array([r.spec.model.width for r in chosen], float)
    sizes = {c: np.array([r.final(c) for r in chosen]) for c in cols}
    slopes = np.array([np.polyfit(np.log(widths), np.log(v), 1)[0] if np.all(v > 0) else np.nan
                       for v in sizes.values()])
    return slopes, {"widths": widths, **sizes}


class MupTransfer(Phenomenon):
    name = "mup_transfer"
    title = "Does the best learning rate transfer across width under muP, but not under SP?"
    direction = "hyperparameters"
    sources = ("Yang et al. 2022, Tensor Programs V: tuning large neural networks via zero-shot hyperparameter "
               "transfer",)
    prediction = ("Under muP the loss-minimising learning rate moves by at most one factor-2 grid step across widths "
                  "and the loss-vs-lr curves of different widths overlap better than under SP; the coordinate check is "
                  "flat under muP (slope 0 +- 0.25) and grows with width under SP.")
    measures = ("Training loss after a fixed Adam budget over a factor-2 learning-rate grid for 4-6 widths, in SP and "
                "muP, and the RMS activation size of every layer against width at the base width's best rate.")
    archs = ("mlp",)
    datasets = ("digits",)
    allowed_datasets = ("digits", "gaussian_mixture", "spirals")
    upload_tasks = ("classification",)
    normalisation = "each width's loss divided by its best loss"

    def _grid(self, size, archs, datasets):
        widths, log2_lrs, steps, n_train, batch = SIZE_SETTINGS[size]
        data = {d: data_spec(d, n_train, 256) for d in datasets}
        return [
            RunSpec(
                model=ModelSpec(arch=arch, width=width, depth=2, activation="relu", param=param, base_width=widths[0]),
                data=data[dataset],
                optim=OptimSpec(name="adam", lr=2.0**k, steps=steps, loss="ce", batch_size=minibatch(batch, data[dataset]),
                                  eval_every=0),
                probes=ProbeSpec(log_every=2, extra=(PROBE,), extra_every=steps, save_weights=False),
            )
            for arch in archs for dataset in datasets for param in ("sp", "mup") for width in widths for k in log2_lrs
        ]

    def verdict(self, runs) -> Verdict:
        tables = loss_table(runs)
        rows, checks, details = [], [], {}
        for arch, dataset in sorted({(a, d) for _, a, d in tables}):
            if (("sp", arch, dataset) not in tables) or (("mup", arch, dataset) not in tables):
                continue
            tag = f"{arch}, {dataset}"
            mw, mlrs, mloss = tables[("mup", arch, dataset)]
            sw, slrs, sloss = tables[("sp", arch, dataset)]
            m_arg, s_arg = argmin_lrs(mlrs, mloss), argmin_lrs(slrs, sloss)
            m_shift = float(np.nanmax(m_arg) - np.nanmin(m_arg)) if np.any(np.isfinite(m_arg)) else float("nan")
            s_shift = float(np.nanmax(s_arg) - np.nanmin(s_arg)) if np.any(np.isfinite(s_arg)) else float("nan")
            m_spread, s_spread = curve_spread(mloss), curve_spread(sloss)
            enough = len(mw) >= 4 and np.all(np.isfinite(m_arg))
            checks.append((f"muP argmin shift in grid steps ({tag})", m_shift, 0.0, ARGMIN_TOL,
                           bool(enough and m_shift <= ARGMIN_TOL), f"0 \u00b1 {ARGMIN_TOL:g}"))
            checks.append((f"curve spread muP / SP ({tag})", m_spread / s_spread if s_spread > 0 else np.nan, 0.0, 1.0,
                           bool(np.isfinite(m_spread) and np.isfinite(s_spread) and m_spread < s_spread), "< 1"))
            base_lr = m_arg[0]
            m_coord, m_sizes = coord_slopes(runs, "mup", arch, dataset, base_lr)
            s_coord, _ = coord_slopes(runs, "sp", arch, dataset, base_lr)
            m_worst = float(np.max(np.abs(m_coord))) if len(m_coord) and np.all(np.isfinite(m_coord)) else float("nan")
            s_worst = float(np.max(s_coord)) if len(s_coord) and np.all(np.isfinite(s_coord)) else float("nan")
            checks.append((f"muP coordinate-check |slope| ({tag})", m_worst, 0.0, COORD_TOL,
                           bool(np.isfinite(m_worst) and m_worst <= COORD_TOL and s_worst > m_worst),
                           f"0 \u00b1 {COORD_TOL:g}, below SP's {s_worst:.3g}"))
            details.update({f"mup_argmin_log2_lr[{tag}]": _floats(m_arg),
                            f"sp_argmin_log2_lr[{tag}]": _floats(s_arg),
                            f"sp_argmin_shift[{tag}]": s_shift, f"mup_curve_spread[{tag}]": m_spread,
                            f"sp_curve_spread[{tag}]": s_spread, f"coord_lr_log2[{tag}]": float(base_lr),
                            f"mup_coord_slopes[{tag}]": _floats(m_coord),
                            f"sp_coord_slopes[{tag}]": _floats(s_coord)})
            group_ok = all(c[4] for c in checks[-3:])
            for run in runs:
                if (run.spec.model.arch, run.spec.data.name) == (arch, dataset):
                    rows.append(run_row(run, group_ok, tail_loss(run), param=run.spec.model.param,
                                        width=run.spec.model.width, log2_lr=float(np.log2(run.spec.optim.lr))))
        if not checks:
            return Verdict(False, float("nan"), 0.0, ARGMIN_TOL, "Needs runs in both sp and mup.", rows, details)
        passed = all(c[4] for c in checks)
        failing = [c for c in checks if not c[4]]
        head = failing[0] if failing else checks[0]
        parts = [f"{c[0]} = {c[1]:.3g} (predicted {c[5]}) {'holds' if c[4] else 'fails'}" for c in checks]
        sp_shifts = [v for k, v in details.items() if k.startswith("sp_argmin_shift")]
        lead = ("The best learning rate transfers under muP. " if passed
                else "Transfer under muP is not borne out here. ")
        lead += f"SP's argmin moved {', '.join(f'{v:g}' for v in sp_shifts)} grid steps. "
        return Verdict(passed, float(head[1]), float(head[2]), float(head[3]),
                       lead + "; ".join(parts) + f". Headline: {head[0]}.", rows, details)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from ..plots import phenomena_solvable as plots

        return [plots.mup_lr_figure(runs, normalised, presentation), plots.mup_coord_figure(runs, presentation)]


PHENOMENON = MupTransfer()
