"""Shared resources and caches of the app (one server process, many sessions).

`st.cache_resource` holds read-only or thread-safe shared objects: the run store, the gallery, the
training pool. `st.cache_data` holds finished runs and listings, keyed by store root and run key
(never by tensors or big arrays). The gallery is read-only and shipped, so its listing is cached for
the life of the process; the store's listing is cheap (SQLite) and read fresh.

Training happens in the pool's worker processes (pool.py), sized from the profile and the CPU quota
the container really has (quota.py): one worker per CPU, at most `max_concurrent_runs`, each with
`max_worker_mb` of memory. `LEARNMECH_TRAINER=thread` trains on threads of the server instead (the
design before the pool; AppTest uses it too, since its script runs inside the test process);
`LEARNMECH_WORKERS` overrides the number of workers.

Importing this module is cheap: app.py imports it on the way to a fresh server's first page, so pandas,
torch (with any of `learnmech_core`) and the pool are imported by the functions that use them, and
`configure_process` loads them once per process, after the home page (see app.py).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from . import quota
from .cards import gallery_root  # the gallery folder, found without importing learnmech_core

if TYPE_CHECKING:
    import pandas as pd

    from learnmech_core.config import Caps
    from learnmech_core.store import RunStore
    from learnmech_core.train import Run

    from .pool import TrainingPool

SECRET_SETTINGS = ("LEARNMECH_PROFILE", "LEARNMECH_TRAINER", "LEARNMECH_WORKERS", "LEARNMECH_WORKER_NICE",
                   "LEARNMECH_TORCH_THREADS", "LEARNMECH_HOME", "LEARNMECH_DATA_DIR")


def settings_from_secrets(secrets, environ=os.environ) -> dict[str, str]:
    """Copy the LEARNMECH_* settings found in Streamlit secrets into the environment (where not set there).

    Streamlit Community Cloud takes settings as secrets (TOML in the app's "Advanced settings"); root-level
    ones also reach os.environ when the server starts, but a secrets file added later, or AppTest's
    secrets, reach only `st.secrets`. Returns what was copied.
    """
    copied = {}
    for name in SECRET_SETTINGS:
        try:
            value = secrets.get(name) if hasattr(secrets, "get") else None
        except Exception:  # no secrets file at all
            return copied
        if value is not None and not isinstance(value, dict) and name not in environ:
            environ[name] = copied[name] = str(value)
    return copied


def apply_secrets() -> None:
    """Once per script run, before anything reads the profile: settings from `st.secrets` (cheap: a dict)."""
    with contextlib.suppress(Exception):
        settings_from_secrets(st.secrets)


def current_caps() -> Caps:
    """The profile's caps (`learnmech_core.config.current_caps`)."""
    from learnmech_core.config import current_caps as caps

    return caps()


def default_root() -> Path:
    """Where the writable store lives (`learnmech_core.store.default_root`)."""
    from learnmech_core.store import default_root as root

    return root()


@st.cache_resource(show_spinner=False)
def _store_at(root: str) -> RunStore:
    from learnmech_core.store import RunStore

    return RunStore(root)


def store() -> RunStore:
    """The writable run store (LEARNMECH_HOME, default ~/.cache/learnmech)."""
    return _store_at(str(default_root()))


@st.cache_resource(show_spinner=False)
def _gallery_at(root: str) -> RunStore:
    from learnmech_core.store import RunStore

    return RunStore(root, readonly=True)


def gallery() -> RunStore:
    """The shipped, precomputed gallery (`gallery_root()`), read-only; empty when not built yet."""
    return _gallery_at(str(gallery_root()))


def gallery_present() -> bool:
    return (gallery_root() / "runs").is_dir() and any((gallery_root() / "runs").iterdir())


def trainer_mode() -> str:
    """'process' (worker processes) unless LEARNMECH_TRAINER=thread or the script runs under AppTest."""
    env = os.environ.get("LEARNMECH_TRAINER", "").strip().lower()
    if env in ("process", "thread"):
        return env
    from streamlit.runtime.state.common import TESTING_KEY

    try:
        return "thread" if TESTING_KEY in st.session_state else "process"
    except Exception:  # outside a script run
        return "process"


def pool_shape() -> tuple[int, int]:
    """(workers, torch threads per worker) from the profile and the CPU quota (LEARNMECH_WORKERS overrides)."""
    caps = current_caps()
    workers, threads = quota.pool_shape(quota.available_cpus(), caps.max_concurrent_runs)
    env = os.environ.get("LEARNMECH_WORKERS", "").strip()
    if env.isdigit() and int(env) > 0:
        workers = int(env)
    return workers, threads


def worker_nice() -> int:
    """How much lower than the server the workers run (LEARNMECH_WORKER_NICE, default 10): the server's
    pages come first. On a machine shared with other busy processes, 0 gives training its fair share."""
    env = os.environ.get("LEARNMECH_WORKER_NICE", "").strip()
    return int(env) if env.isdigit() else 10


@st.cache_resource(show_spinner=False)
def _pool(profile: str, mode: str, workers: int, threads: int, cap_mb: float, root: str, nice: int) -> TrainingPool:
    from .pool import TrainingPool

    pool = TrainingPool(workers, mode, store=_store_at(root), memory_cap_mb=cap_mb, threads=threads, profile=profile,
                        nice=nice)
    if mode == "process":  # start the forkserver (it imports torch: seconds) and the workers now, not at the first Run
        threading.Thread(target=pool.warm, name="learnmech-pool-warm", daemon=True).start()
    return pool


def pool() -> TrainingPool:
    """The server-wide training pool: the queue every session's runs wait in, and the workers."""
    caps = current_caps()
    workers, threads = pool_shape()
    return _pool(caps.profile, trainer_mode(), workers, threads, caps.max_worker_mb, str(default_root()),
                 worker_nice())


def refuse(spec) -> str:
    """Why a run is not trained here ('' when it fits the profile's memory cap per run)."""
    from learnmech_core.footprint import refusal

    caps = current_caps()
    try:
        return refusal(spec, caps.max_worker_mb, caps.profile)
    except Exception:  # an estimate that fails never blocks a run; the worker's memory watch still applies
        return ""


def sources() -> list[RunStore]:
    """Stores a finished run may come from, in lookup order: the session-shared store, then the gallery."""
    return [store(), gallery()]


# ------------------------------------------------------------------------------------------------
# runs


class _Missing(Exception):
    pass


@st.cache_data(show_spinner=False, max_entries=256)
def _load(root: str, key: str, readonly: bool) -> Run:
    st_ = _gallery_at(root) if readonly else _store_at(root)
    run = st_.get(key)
    if run is None:
        raise _Missing(key)  # exceptions are not cached: a run stored later is found then
    return run


def load_run(key: str) -> tuple[Run | None, str]:
    """(run, 'store' | 'gallery') for a key, or (None, '') when neither has it."""
    for name, src in (("store", store()), ("gallery", gallery())):
        try:
            if src.has(key):
                return _load(str(src.root), key, src.readonly), name
        except (_Missing, ValueError):
            continue
    return None, ""


def locate(key: str) -> str:
    """'store' or 'gallery' when a complete run with this key is there (store first), else ''."""
    for name, src in (("store", store()), ("gallery", gallery())):
        try:
            if src.has(key):
                return name
        except ValueError:
            return ""
    return ""


def forget_run(key: str) -> None:
    """Drop cached copies after a delete (the cache is shared by all sessions)."""
    _load.clear()


@st.cache_data(show_spinner=False, ttl=3600)
def _gallery_listing(root: str, mtime: float) -> pd.DataFrame:
    return _gallery_at(root).list()


def run_index() -> pd.DataFrame:
    """All runs of the store and the gallery: index columns plus `source` (store | gallery)."""
    import pandas as pd

    parts = []
    try:
        mine = store().list()
        mine.insert(1, "source", "store")
        parts.append(mine)
    except Exception:
        pass
    g = gallery()
    runs_dir = Path(g.root) / "runs"
    if runs_dir.is_dir():
        listing = _gallery_listing(str(g.root), runs_dir.stat().st_mtime).copy()
        listing.insert(1, "source", "gallery")
        parts.append(listing)
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["key", "source", "arch", "dataset", "status", "tags"])
    table = pd.concat(parts, ignore_index=True)
    return table.drop_duplicates("key", keep="first").reset_index(drop=True)


MEASUREMENT_MODULES = ("curvature", "spectra", "landscape", "ntk", "noise", "collapse", "universality",
                       "representations")


def torch_threads_for_app() -> int:
    """Intra-op threads of the server process.

    With worker processes the server trains nothing: one thread for what it computes itself (figures,
    decision boundaries of finished runs). In thread mode runs train in threads of this process and
    torch's intra-op pool is process-wide, so the cores are shared among the runs that may train at once
    (oversubscribed, small models slow down a hundredfold: 100 steps of a width-8 MLP took 25 s with 2
    threads on a busy 2-core machine, 0.11 s with 1). LEARNMECH_TORCH_THREADS overrides.
    """
    env = os.environ.get("LEARNMECH_TORCH_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if trainer_mode() == "process":
        return 1
    return max(1, int(quota.available_cpus()) // max(current_caps().max_concurrent_runs, 1))


_CONFIGURED = threading.Event()


def configured() -> bool:
    """Whether `configure_process` has run in this process."""
    return _CONFIGURED.is_set()


@st.cache_resource(show_spinner=False)
def configure_process() -> int:
    """Once per server process: torch's thread count, the training pool (its workers start in the
    background), the measurement modules imported, the gallery's run listing read in the background.
    app.py calls it before every page but the home page, which needs none of it (see sidebar.py).

    Importing the modules here, in a script thread, means no other thread imports (and compiles) code
    while a script is being parsed (CPython 3.11 can raise 'AST constructor recursion depth mismatch'
    when two threads build ASTs at once).
    """
    import importlib

    import torch

    threads = torch_threads_for_app()
    torch.set_num_threads(threads)
    for name in MEASUREMENT_MODULES:
        with contextlib.suppress(Exception):  # a module being rewritten: imported later by the probe that needs it
            importlib.import_module(f"learnmech_core.{name}")
    importlib.import_module("learnmech_app.worker")  # the thread-mode worker loop; torch._dynamo with it
    training_here = trainer_mode() == "thread"
    pool()
    threading.Thread(target=_warm_everything, args=(training_here,), name="learnmech-warm-up", daemon=True).start()
    _CONFIGURED.set()
    return threads


def _warm_everything(training_here: bool) -> None:
    """Background work at server start: torch's one-time costs (when runs train here) and the run listing."""
    if training_here:
        warm_up()
    with contextlib.suppress(Exception):
        run_index()  # the gallery's listing (reading every run's spec) for Runs, Compare and Spectra


def warm_up() -> float:
    """Pay torch's one-time costs in this process before a visitor presses Run; returns the seconds it took.

    The first optimiser step of a process imports torch._dynamo (1-15 s on a busy 2-core machine);
    a two-step run of a tiny model takes that off the first live run when runs train in this process.
    Nothing is stored.
    """
    import time

    from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train

    started = time.perf_counter()
    try:
        spec = RunSpec(model=ModelSpec(width=4, depth=1), data=DataSpec(name="moons", n_train=16, n_test=4),
                       optim=OptimSpec(steps=2), probes=ProbeSpec(sharpness_every=1, save_weights=False))
        train(spec)
    except Exception:
        pass
    return time.perf_counter() - started


def device_in_use() -> str:
    """The device new runs train on, in words."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


def profile_text() -> str:
    caps = current_caps()
    workers, _ = pool_shape()
    where = "in worker processes" if trainer_mode() == "process" else "in the server process"
    return (f"{caps.profile} profile: {workers} run{'s' if workers != 1 else ''} train at once {where} "
            f"(at most {caps.max_worker_mb:,.0f} MB each), {caps.max_steps:,} steps, {caps.max_params:,} parameters, "
            f"uploads up to {caps.max_upload_mb:g} MB")


def store_location() -> str:
    return str(default_root())


def hosted() -> bool:
    return current_caps().profile == "hosted"
