"""Sweeps: a base RunSpec plus axes of values, expanded to runs and trained by one of several backends.

`SweepSpec(base, axes={"optim.lr": [0.01, 0.02], "seed": [0, 1]})` names each axis by a dotted spec
field (or a short alias: lr, width, depth, seed, batch_size, param, arch, dataset, ...). Expansion is
`itertools.product` over the axes in the order given, the last axis fastest; every expanded spec is
validated when the SweepSpec is built (a bad value raises ValueError naming the axis and the field),
and the number of runs is capped (`MAX_SWEEP_RUNS` per profile).

`run_sweep(sweep, backend="auto", ...)` returns one Run per expanded spec, in expansion order. Runs
already in the store are read, not trained; each new run is written to the store as soon as it
finishes, so a sweep that is stopped or killed keeps what finished and resumes from there. Stopped
runs are never stored; a spec left unfinished by a stop comes back as a Run with status "stopped"
(empty history when it never started). Backends, all giving the numbers of the plain loop:

- `serial`: `train(spec)` one after another, in this process.
- `vmap`: ensemble-compatible specs (same everything except seed, lr, weight decay, momentum/betas,
  init scale; full batch; norms and sharpness probes only) train together as one `torch.func`
  ensemble (`learnmech_core.ensemble`); the rest serially.
- `process`: a local spawn-context process pool, one run per task, `cores // workers` torch threads
  per worker; datasets registered in memory (uploads) stay in this process. A script that uses it
  needs the `if __name__ == "__main__":` guard, as for any spawn pool.
- `ray`: one Ray task per run on the cluster at LEARNMECH_RAY_ADDRESS (else a local instance), this
  package shipped with `runtime_env={"py_modules": [...]}`; when the caller has already called
  `ray.init`, that connection is used as it is (its workers must be able to import learnmech_core:
  a local instance sees the driver's sys.path; for a remote cluster pass the py_modules yourself).
- `auto`: vmap for ensemble groups whose model is small enough to gain (parameters x examples at most
  `VMAP_MAX_WORK`, measured in benchmarks/sweep.py), a process pool for the rest when there is more
  than one run and enough estimated work (`PROCESS_MIN_S`) to pay for starting workers, else serial.
  Single-threaded workers are also what keeps a busy machine fast: torch's intra-op threads in one
  process slow down several-fold when other processes compete for the cores.

Progress goes to `on_progress(done, total, key)` (runs finished so far, runs in the sweep, key of the
run just started or finished); `should_stop()` is checked between runs, between ensemble steps and,
inside serial and pooled runs, between training steps.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import itertools
import json
import math
import multiprocessing
import os
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, current_caps
from .registry import UPLOAD_PREFIX
from .train import SPECTRA_COLUMNS, Run, train

BACKENDS = ("auto", "serial", "vmap", "process", "ray")
MAX_SWEEP_RUNS = {"local": 1024, "hosted": 64}  # runs in one sweep, per profile
AXIS_ALIASES = {
    "lr": "optim.lr", "width": "model.width", "depth": "model.depth", "seed": "seed",
    "batch_size": "optim.batch_size", "param": "model.param", "arch": "model.arch", "dataset": "data.name",
    "activation": "model.activation", "init_scale": "model.init_scale", "optimizer": "optim.name",
    "weight_decay": "optim.weight_decay", "momentum": "optim.momentum", "steps": "optim.steps",
    "loss": "optim.loss", "n_train": "data.n_train", "data_seed": "data.seed",
}
VMAP_MAX_WORK = 3e7  # parameters x training examples a step up to which a vmap ensemble beats other backends
MAX_ENSEMBLE_PARAMS = 5e7  # stacked parameters in one ensemble (x ~4 with gradients and optimiser state)
PROCESS_MIN_S = 10.0  # estimated serial seconds below which starting a process pool does not pay
RAY_ADDRESS_ENV = "LEARNMECH_RAY_ADDRESS"
ProgressFn = Callable[[int, int, str], None]


# ------------------------------------------------------------------------------------------------
# the sweep spec


def field_types() -> dict[str, object]:
    """Type hint of every dotted RunSpec field ("optim.lr" -> float)."""
    hints = {}
    for prefix, cls in (("model", ModelSpec), ("data", DataSpec), ("optim", OptimSpec), ("probes", ProbeSpec)):
        for f in dataclasses.fields(cls):
            hints[f"{prefix}.{f.name}"] = typing.get_type_hints(cls)[f.name]
    for name in ("seed", "device", "dtype"):
        hints[name] = typing.get_type_hints(RunSpec)[name]
    return hints


def axis_path(name: str) -> str:
    """Dotted field path of an axis name or alias; ValueError for anything else."""
    name = str(name).strip()
    path = AXIS_ALIASES.get(name, name)
    if path not in field_types():
        raise ValueError(f"sweep axis {name!r} is not a spec field; use a dotted path such as optim.lr or "
                         f"model.width, or an alias ({', '.join(AXIS_ALIASES)})")
    return path


def _frozen(value):
    """Lists (tuple fields such as data.classes) as tuples, so axis values are hashable."""
    return tuple(value) if isinstance(value, list) else value


def sweep_cap() -> int:
    """Most runs one sweep may have under the active profile."""
    return MAX_SWEEP_RUNS.get(current_caps().profile, min(MAX_SWEEP_RUNS.values()))


@dataclass(frozen=True)
class SweepSpec:
    """A base RunSpec plus axes {dotted field or alias: values}; validated and capped when built.

    `axes` may be a dict or a sequence of (name, values) pairs; it is stored as a tuple of
    (path, values) pairs in the order given. `specs()` lists the expanded RunSpecs (last axis fastest).
    """

    base: RunSpec
    axes: typing.Any = ()

    def __post_init__(self):
        if not isinstance(self.base, RunSpec):
            raise ValueError(f"sweep base must be a RunSpec (got {type(self.base).__name__})")
        items = self.axes.items() if isinstance(self.axes, dict) else self.axes
        axes, seen = [], set()
        for name, values in items:
            path = axis_path(name)
            if path in seen:
                raise ValueError(f"sweep axis {path} is given twice")
            seen.add(path)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise ValueError(f"sweep axis {path} needs a list of values (got {values!r})")
            values = tuple(_frozen(v) for v in values)
            if not values:
                raise ValueError(f"sweep axis {path} needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"sweep axis {path} repeats a value ({list(values)})")
            axes.append((path, values))
        object.__setattr__(self, "axes", tuple(axes))
        size, cap = math.prod(len(v) for _, v in axes), sweep_cap()
        if size > cap:
            raise ValueError(f"sweep has {size} runs; the {current_caps().profile} profile allows at most {cap} "
                             f"(shorten an axis: {', '.join(f'{p} has {len(v)}' for p, v in axes)})")
        object.__setattr__(self, "_specs", tuple(self._expand()))

    def _expand(self) -> list[RunSpec]:
        """RunSpecs of every point; a bad one raises ValueError naming the point and the field."""
        specs = []
        for point in self.points():
            try:
                specs.append(self.base.replace(**point) if point else self.base)
            except ValueError as err:
                where = ", ".join(f"{p}={v!r}" for p, v in point.items())
                raise ValueError(f"sweep point {where}: {err}") from None
        return specs

    def points(self) -> list[dict]:
        """The axis values of each run, {path: value}, in expansion order (legends, tables)."""
        names = [p for p, _ in self.axes]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(v for _, v in self.axes))]

    def specs(self) -> list[RunSpec]:
        """The expanded, validated RunSpecs in expansion order."""
        return list(self._specs)

    def keys(self) -> list[str]:
        """spec.key() of each expanded run."""
        return [s.key() for s in self._specs]

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def axis_names(self) -> list[str]:
        """Dotted paths of the axes, in order."""
        return [p for p, _ in self.axes]

    def labels(self) -> list[str]:
        """A short legend label per run ("optim.lr=0.01, seed=1"), in expansion order."""
        return [", ".join(f"{p}={v:g}" if isinstance(v, float) else f"{p}={v}" for p, v in point.items())
                for point in self.points()]

    def table(self) -> pd.DataFrame:
        """One row per run: key and the axis values (what a legend or a results table needs)."""
        return pd.DataFrame([{"key": s.key(), **p} for s, p in zip(self._specs, self.points(), strict=True)])

    def to_dict(self) -> dict:
        """{"base": spec dict, "axes": {path: [values]}} (JSON-ready, order kept)."""
        return {"base": self.base.to_dict(),
                "axes": {p: [list(v) if isinstance(v, tuple) else v for v in vals] for p, vals in self.axes}}

    @classmethod
    def from_dict(cls, data: dict) -> SweepSpec:
        """Inverse of to_dict."""
        if not isinstance(data, dict) or "base" not in data:
            raise ValueError("a sweep must be an object with 'base' (a spec) and 'axes'")
        return cls(RunSpec.from_dict(data["base"]), dict(data.get("axes", {})))


def value_range(start: float, stop: float, num: int, log: bool = False, integer: bool = False) -> list:
    """num values from start to stop inclusive, evenly or log-spaced (a UI range -> axis values)."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"a range needs a whole number of values, at least 1 (got {num!r})")
    if log and (start <= 0 or stop <= 0):
        raise ValueError(f"a log-spaced range needs positive ends (got {start:g} and {stop:g})")
    if num == 1:
        values = [float(start)]
    elif log:
        values = [start * (stop / start) ** (i / (num - 1)) for i in range(num)]
    else:
        values = [start + (stop - start) * i / (num - 1) for i in range(num)]
    if integer:
        return list(dict.fromkeys(int(round(v)) for v in values))
    return [float(f"{v:.6g}") for v in values]


def parse_values(path: str, text: str) -> list:
    """Axis values from text: a comma list ("0.01,0.02") or an inclusive integer range ("0..3")."""
    hint = str(field_types()[path])
    text = str(text).strip()
    if ".." in text and "," not in text:
        lo, _, hi = text.partition("..")
        try:
            lo_i, hi_i = int(lo), int(hi)
        except ValueError:
            raise ValueError(f"sweep axis {path}: range {text!r} must be two integers like 0..3") from None
        if hi_i < lo_i:
            raise ValueError(f"sweep axis {path}: range {text!r} is empty (the end is below the start)")
        return list(range(lo_i, hi_i + 1))
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"sweep axis {path} needs at least one value")
    return [_parse_one(path, hint, t) for t in items]


def _parse_one(path: str, hint: str, text: str):
    """One axis value from text, typed by the field's hint."""
    try:
        if hint == "<class 'int'>" or hint == "int":
            value = float(text)
            return int(value) if value.is_integer() else value
        if hint == "<class 'float'>" or hint == "float":
            return float(text)
        if hint == "<class 'bool'>" or hint == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
    except ValueError:
        raise ValueError(f"sweep axis {path}: {text!r} is not a valid value") from None
    return text


def parse_axis(text: str) -> tuple[str, list]:
    """`NAME=VALUES` (CLI syntax) -> (dotted path, values)."""
    if "=" not in text:
        raise ValueError(f"sweep axis must look like NAME=VALUES, e.g. lr=0.01,0.02 or seed=0..3 (got {text!r})")
    name, values = text.split("=", 1)
    path = axis_path(name)
    return path, parse_values(path, values)


# ------------------------------------------------------------------------------------------------
# planning: which backend trains which specs


def estimated_work(spec: RunSpec) -> float:
    """Parameters x training examples of one step (the ensembles' cost model)."""
    from .data import describe
    from .models import param_count

    examples = spec.data.n_train if not spec.optim.batch_size else min(spec.optim.batch_size, spec.data.n_train)
    return float(param_count(spec.model, describe(spec.data))) * examples


def estimated_seconds(spec: RunSpec) -> float:
    """Rough serial seconds of a run on one CPU core (1 ms overhead + 6 flops a parameter-example a step)."""
    per_step = 1e-3 + 6.0 * estimated_work(spec) / 2e10
    if spec.probes.sharpness_every:
        per_step *= 1.0 + 20.0 / spec.probes.sharpness_every
    return spec.optim.steps * per_step


def _cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _local_only(spec: RunSpec) -> bool:
    """Specs whose data lives in this process's memory (uploads) cannot train elsewhere."""
    return spec.data.name.startswith(UPLOAD_PREFIX)


def ensemble_size(spec: RunSpec, max_members: int) -> int:
    """Members per ensemble: at most max_members, and at most MAX_ENSEMBLE_PARAMS parameters in all."""
    from .data import describe
    from .models import param_count

    return max(2, min(max_members, int(MAX_ENSEMBLE_PARAMS // max(1, param_count(spec.model, describe(spec.data))))))


def plan(specs: list[RunSpec], backend: str = "auto") -> list[tuple[str, list[RunSpec]]]:
    """Batches (backend, specs) that together train all the specs; 'vmap' batches are one ensemble each."""
    from .ensemble import MAX_MEMBERS, ensemble_group

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if backend in ("serial", "process", "ray"):
        if backend == "serial":
            return [("serial", list(specs))] if specs else []
        remote = [s for s in specs if not _local_only(s)]
        local = [s for s in specs if _local_only(s)]
        return ([(backend, remote)] if remote else []) + [("serial", [s]) for s in local]
    groups: dict[str, list[int]] = {}
    rest: set[int] = set()
    for i, spec in enumerate(specs):
        key = ensemble_group(spec)
        if key is not None and (backend == "vmap" or estimated_work(spec) <= VMAP_MAX_WORK):
            groups.setdefault(key, []).append(i)
        else:
            rest.add(i)
    out = []
    for members in groups.values():
        size = ensemble_size(specs[members[0]], MAX_MEMBERS)
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            if len(chunk) > 1:
                out.append(("vmap", [specs[i] for i in chunk]))
            else:
                rest.update(chunk)
    leftover = [specs[i] for i in sorted(rest)]  # expansion order
    poolable = [s for s in leftover if not _local_only(s)]
    if (backend == "auto" and len(poolable) > 1 and _cores() > 1
            and sum(estimated_seconds(s) for s in poolable) >= PROCESS_MIN_S):
        out.append(("process", poolable))
        leftover = [s for s in leftover if _local_only(s)]
    return out + ([("serial", leftover)] if leftover else [])


# ------------------------------------------------------------------------------------------------
# running


def _stopped_run(spec: RunSpec, message: str = "the sweep was stopped before this run started") -> Run:
    """Placeholder Run (status stopped, empty history) for a spec the sweep did not finish."""
    return Run(spec=spec, history=pd.DataFrame(columns=["step", "loss"]),
               spectra=pd.DataFrame(columns=SPECTRA_COLUMNS), status="stopped", message=message)


class _Tracker:
    """Collects finished runs, writes them to the store and reports progress."""

    def __init__(self, store, total: int, done: int, on_progress: ProgressFn | None, tags):
        self.store, self.total, self.done, self.on_progress, self.tags = store, total, done, on_progress, tags
        self.runs: dict[str, Run] = {}

    def started(self, spec: RunSpec) -> None:
        """Report that a run (or an ensemble, by its first member) has started."""
        if self.on_progress is not None:
            self.on_progress(self.done, self.total, spec.key())

    def finished(self, run: Run) -> None:
        """Keep a run, store it unless stopped (or lost to a broken worker), report progress."""
        self.runs[run.key] = run
        if run.status != "stopped":
            writable = self.store is not None and not getattr(self.store, "readonly", False)
            if writable and not run.timings.get("worker_failed"):
                self.store.put(run, tags=self.tags)
            self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, self.total, run.key)


def run_sweep(sweep: SweepSpec | list[RunSpec], backend: str = "auto", on_progress: ProgressFn | None = None,
              should_stop: Callable[[], bool] | None = None, store=None, tags=(),
              workers: int | None = None) -> list[Run]:
    """Train the sweep's missing runs and return every run, in expansion order (see module docstring).

    `store`: a RunStore (default: `RunStore()`), or False to neither read nor write one.
    `workers`: process-pool size (default: the usable cores, at most the number of runs).
    """
    from .store import RunStore

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    specs = sweep.specs() if isinstance(sweep, SweepSpec) else list(sweep)
    store = RunStore() if store is None else (store or None)
    unique = list({s.key(): s for s in specs}.values())
    stored = {}
    if store is not None:
        for spec in unique:
            run = store.get(spec.key()) if store.has(spec.key()) else None
            if run is not None:
                stored[spec.key()] = run
    missing = [s for s in unique if s.key() not in stored]
    tracker = _Tracker(store, len(unique), len(stored), on_progress, list(tags))
    stop = should_stop or (lambda: False)
    for kind, batch in plan(missing, backend):
        if stop():
            break
        _RUNNERS[kind](batch, tracker, stop, workers)
    found = {**stored, **tracker.runs}
    return [found.get(s.key()) or _stopped_run(s) for s in specs]


def _run_serial(specs, tracker: _Tracker, stop, workers=None) -> None:
    """Plain train() calls, one after another."""
    for spec in specs:
        if stop():
            return
        tracker.started(spec)
        tracker.finished(train(spec, should_stop=stop))


def _run_vmap(specs, tracker: _Tracker, stop, workers=None) -> None:
    """One ensemble; falls back to serial runs when the specs turn out not to vmap."""
    from .ensemble import EnsembleUnsupported, train_ensemble

    tracker.started(specs[0])
    try:
        runs = train_ensemble(specs, should_stop=stop)
    except EnsembleUnsupported:
        return _run_serial(specs, tracker, stop)
    for run in runs:
        tracker.finished(run)


# --- process pool --------------------------------------------------------------------------------


def _init_worker(threads: int) -> None:
    """Pool initializer: torch threads so that workers x threads does not exceed the cores."""
    import torch

    torch.set_num_threads(threads)


def _train_in_worker(spec_json: str, stop_file: str) -> Run:
    """Train one spec in a pool worker; the run stops when the parent creates stop_file."""
    return train(RunSpec.from_json(spec_json), should_stop=lambda: os.path.exists(stop_file))


def pool_shape(n_runs: int, workers: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker) for a pool over n_runs on this machine's cores."""
    cores = _cores()
    workers = max(1, min(workers or cores, n_runs))
    return workers, max(1, cores // workers)


def _run_process(specs, tracker: _Tracker, stop, workers=None) -> None:
    """A spawn-context process pool; the parent stores each run as it finishes."""
    n_workers, threads = pool_shape(len(specs), workers)
    with tempfile.TemporaryDirectory(prefix="learnmech-sweep-") as tmp:
        stop_file = str(Path(tmp) / "stop")
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker,
                                    initargs=(threads,)) as pool:
            pending = {}
            for spec in specs:
                pending[pool.submit(_train_in_worker, spec.to_json(), stop_file)] = spec
            if specs:
                tracker.started(specs[0])
            _collect(pending, tracker, stop, lambda: (Path(stop_file).touch(), [f.cancel() for f in pending]))


def _collect(pending: dict, tracker: _Tracker, stop, on_stop) -> None:
    """Wait for futures, handing each finished run to the tracker; on a stop call on_stop once."""
    stopping = False
    while pending:
        done, _ = cf.wait(list(pending), timeout=0.2, return_when=cf.FIRST_COMPLETED)
        for future in done:
            spec = pending.pop(future)
            if future.cancelled():
                continue
            tracker.finished(_result_or_failed(spec, future.result))
        if not stopping and stop():
            stopping = True
            on_stop()


def _result_or_failed(spec: RunSpec, get) -> Run:
    """The worker's Run, or a failed Run (never stored, so a resume retries it) when the worker broke."""
    try:
        return get()
    except Exception as err:
        run = _stopped_run(spec, f"the worker broke: {type(err).__name__}: {err}")
        run.status = "failed"
        run.timings["worker_failed"] = True
        return run


# --- Ray -------------------------------------------------------------------------------------------


def _train_on_ray(spec_json: str) -> Run:
    """One run inside a Ray task (torch threads = the CPUs Ray assigned)."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    return train(RunSpec.from_json(spec_json))


def ray_init_kwargs() -> dict:
    """ray.init arguments: the cluster at LEARNMECH_RAY_ADDRESS (else a local instance), shipping this package."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    package = str(Path(__file__).resolve().parent)
    kwargs = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False,
              "runtime_env": {"py_modules": [package]}}
    if address:
        kwargs["address"] = address
    return kwargs


def _run_ray(specs, tracker: _Tracker, stop, workers=None) -> None:
    """One Ray task per spec; results come back here and are written to this process's store."""
    try:
        import ray
    except ImportError:
        raise ValueError("backend 'ray' needs Ray: pip install -r requirements-extra.txt") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**ray_init_kwargs())
    try:
        task = ray.remote(num_cpus=1)(_train_on_ray)
        pending = {task.remote(spec.to_json()): spec for spec in specs}
        if specs:
            tracker.started(specs[0])
        stopping = False
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            for ref in done:
                spec = pending.pop(ref)
                run = _result_or_failed(spec, lambda ref=ref: ray.get(ref))
                if not (stopping and run.status == "failed"):
                    tracker.finished(run)
            if not stopping and stop():
                stopping = True
                for ref in pending:
                    ray.cancel(ref, force=True)
    finally:
        if started_here:
            ray.shutdown()


_RUNNERS = {"serial": _run_serial, "vmap": _run_vmap, "process": _run_process, "ray": _run_ray}


def sweep_from_json(text: str) -> SweepSpec:
    """A SweepSpec from its JSON (to_dict form)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"sweep JSON is not valid JSON: {err}") from None
    return SweepSpec.from_dict(data)
