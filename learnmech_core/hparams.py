"""A sweep as one table: the spec fields that vary across a set of runs, and each run's final metrics.

What TensorBoard's HParams dashboard and W&B's sweep views show: one row per run, its settings as
columns and its outcome as metrics, ready for parallel coordinates, a scatter of a metric against a
setting, and sorting. Varying fields are found automatically: every dotted spec field
(`optim.lr`, `model.width`, `seed`, ...) whose value is not the same for all runs.

Metrics (NaN where a run did not record the column):

- final_loss, final_train_loss, final_test_loss, final_train_acc, final_test_acc: the last logged value;
- min_loss: the smallest logged training loss;
- final_sharpness: the last measured top Hessian eigenvalue;
- sharpness_ratio: final_sharpness / stability threshold, with the threshold 2/eta for GD and SGD and
  (2 + 2 beta)/eta for heavy-ball momentum (Cohen et al. 2021); NaN for Adam (its threshold concerns
  the preconditioned sharpness);
- final_alpha: the last mean power-law alpha of the weight spectra;
- steps_done: the last logged step (short of optim.steps for diverged or stopped runs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

METRICS = ("final_loss", "final_train_loss", "final_test_loss", "final_train_acc", "final_test_acc", "min_loss",
           "final_sharpness", "sharpness_ratio", "final_alpha", "steps_done")
_LAST = {"final_loss": "loss", "final_train_loss": "train_loss", "final_test_loss": "test_loss",
         "final_train_acc": "train_acc", "final_test_acc": "test_acc", "final_sharpness": "sharpness",
         "final_alpha": "alpha_mean"}


def spec_fields(spec) -> dict[str, object]:
    """The spec as {dotted field: value}; lists become tuples so values can be compared and grouped."""
    out = {}

    def walk(data: dict, prefix: str) -> None:
        for name, value in data.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = tuple(value) if isinstance(value, list) else value

    walk(spec.to_dict(), "")
    return out


def varying_fields(specs: Sequence) -> list[str]:
    """Dotted fields whose value differs between the specs, in the specs' field order."""
    rows = [spec_fields(s) for s in specs]
    if not rows:
        return []
    names = list(rows[0])
    return [n for n in names if len({json.dumps(r.get(n), sort_keys=True, default=str) for r in rows}) > 1]


def stability_threshold(spec) -> float:
    """GD's sharpness threshold for the run's optimiser: 2/eta, (2 + 2 beta)/eta with momentum; NaN for Adam."""
    o = spec.optim
    if o.name in ("gd", "sgd"):
        return 2.0 / o.lr
    if o.name == "momentum":
        return (2.0 + 2.0 * o.momentum) / o.lr
    return float("nan")


def final_metrics(run) -> dict[str, float]:
    """The METRICS of one run (a `train.Run` or anything with spec and history)."""
    h = run.history
    out = {}
    for name, column in _LAST.items():
        values = h[column].dropna() if column in h else pd.Series(dtype=float)
        out[name] = float(values.iloc[-1]) if len(values) else float("nan")
    losses = h["loss"].dropna() if "loss" in h else pd.Series(dtype=float)
    out["min_loss"] = float(losses.min()) if len(losses) else float("nan")
    out["sharpness_ratio"] = out["final_sharpness"] / stability_threshold(run.spec)
    out["steps_done"] = float(h["step"].max()) if "step" in h and len(h) else float("nan")
    return {m: out[m] for m in METRICS}


def _cell(value: object) -> object:
    """A field value as a table cell: numbers and strings as they are, others (tuples, None) as text."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return value


def hparams_table(runs: Sequence, fields: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run: key, status, the varying fields (or `fields`), then every metric with any finite value."""
    runs = list(runs)
    fields = varying_fields([r.spec for r in runs]) if fields is None else list(fields)
    rows = []
    for run in runs:
        spec = spec_fields(run.spec)
        unknown = [f for f in fields if f not in spec]
        if unknown:
            raise ValueError(f"unknown spec field {unknown[0]!r}")
        rows.append({"key": run.spec.key(), "status": run.status, **{f: _cell(spec[f]) for f in fields},
                     **final_metrics(run)})
    table = pd.DataFrame(rows, columns=["key", "status", *fields, *METRICS])
    empty = [m for m in METRICS if not np.isfinite(table[m].to_numpy(dtype=float)).any()]
    return table.drop(columns=empty)


def setting_columns(table: pd.DataFrame) -> list[str]:
    """The setting (spec field) columns of a table from `hparams_table` or `aggregate_seeds`."""
    derived = {"key", "status", "seeds", *METRICS, *(f"{m}_std" for m in METRICS)}
    return [c for c in table.columns if c not in derived]


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns present in a table from `hparams_table` (or `aggregate_seeds`)."""
    return [m for m in METRICS if m in table]


def aggregate_seeds(table: pd.DataFrame, fields: Sequence[str]) -> pd.DataFrame:
    """Mean of every metric over runs that differ only in `seed` (with `<metric>_std` and the count `seeds`)."""
    group = [f for f in fields if f != "seed"]
    metrics = metric_columns(table)
    if not group:
        raise ValueError("the runs differ only in seed: nothing to group by")
    grouped = table.groupby(group, sort=False, dropna=False)
    mean = grouped[metrics].mean()
    std = grouped[metrics].std(ddof=1).add_suffix("_std")
    count = grouped.size().rename("seeds")
    return pd.concat([mean, std, count], axis=1).reset_index()[[*group, "seeds", *metrics, *std.columns]]


def log_scaled(values: Sequence) -> bool:
    """Whether a column is best shown on a log axis: numbers, all positive, spanning at least a factor 10."""
    a = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    a = a[np.isfinite(a)]
    return bool(a.size >= 2 and np.all(a > 0) and a.max() / a.min() >= 10 - 1e-9)


def is_numeric(values: Sequence) -> bool:
    """Whether a column holds numbers only (booleans count as categories)."""
    s = pd.Series(values)
    return bool(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def nice_number(x: float) -> str:
    """Short text for a tick: 0.001, 0.05, 128, 1e+04."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"
