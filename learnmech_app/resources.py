"""Shared resources and caches of the app (one server process, many sessions).

`st.cache_resource` holds read-only or thread-safe shared objects: the run store, the gallery, the
training `Limiter`. `st.cache_data` holds finished runs and listings, keyed by store root and run key
(never by tensors or big arrays). The gallery is read-only and shipped, so its listing is cached for
the life of the process; the store's listing is cheap (SQLite) and read fresh.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from learnmech_core.config import current_caps
from learnmech_core.store import RunStore, default_root, gallery_root
from learnmech_core.train import Run

from .jobs import Limiter


@st.cache_resource(show_spinner=False)
def _store_at(root: str) -> RunStore:
    return RunStore(root)


def store() -> RunStore:
    """The writable run store (LEARNMECH_HOME, default ~/.cache/learnmech)."""
    return _store_at(str(default_root()))


@st.cache_resource(show_spinner=False)
def _gallery_at(root: str) -> RunStore:
    return RunStore(root, readonly=True)


def gallery() -> RunStore:
    """The shipped, precomputed gallery (`gallery_root()`), read-only; empty when not built yet."""
    return _gallery_at(str(gallery_root()))


def gallery_present() -> bool:
    return (gallery_root() / "runs").is_dir() and any((gallery_root() / "runs").iterdir())


@st.cache_resource(show_spinner=False)
def _limiter(profile: str, slots: int) -> Limiter:
    return Limiter(slots)


def limiter() -> Limiter:
    """The server-wide queue capping concurrent training (caps.max_concurrent_runs)."""
    caps = current_caps()
    return _limiter(caps.profile, caps.max_concurrent_runs)


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
    """Intra-op threads per run: the cores shared among the runs that may train at once.

    Runs train in threads of one server process; torch's intra-op pool is process-wide. With every run
    using every core, concurrent runs (and the page's own script threads) oversubscribe the CPU and
    small models slow down a hundredfold (measured: 100 steps of a width-8 MLP took 25 s with 2 threads
    on a busy 2-core machine, 0.11 s with 1). LEARNMECH_TORCH_THREADS overrides.
    """
    env = os.environ.get("LEARNMECH_TORCH_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // max(current_caps().max_concurrent_runs, 1))


@st.cache_resource(show_spinner=False)
def configure_process() -> int:
    """Once per server process: set torch's thread count and import the measurement modules.

    Importing them here, in a script thread, means worker threads never import (and compile) code
    while a script is being parsed (CPython 3.11 can raise 'AST constructor recursion depth mismatch'
    when two threads build ASTs at once).
    """
    import importlib

    import torch

    threads = torch_threads_for_app()
    torch.set_num_threads(threads)
    for name in MEASUREMENT_MODULES:
        try:
            importlib.import_module(f"learnmech_core.{name}")
        except Exception:
            pass  # a module being rewritten: imported later by the probe that needs it
    threading.Thread(target=_warm_everything, name="learnmech-warm-up", daemon=True).start()
    return threads


def _warm_everything() -> None:
    """Background work at server start: torch's one-time costs and the run listing."""
    warm_up()
    with contextlib.suppress(Exception):
        run_index()  # the gallery's listing (reading every run's spec) for Runs, Compare and Spectra


def warm_up() -> float:
    """Pay torch's one-time costs before a visitor presses Run; returns the seconds it took.

    The first optimiser step of a process imports torch._dynamo (1-15 s on a busy 2-core machine);
    a two-step run of a tiny model in a background thread at server start takes that off the first
    live run. Nothing is stored.
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
    return (f"{caps.profile} profile: at most {caps.max_concurrent_runs} runs train at once, "
            f"{caps.max_steps:,} steps, {caps.max_params:,} parameters, uploads up to {caps.max_upload_mb:g} MB")


def store_location() -> str:
    return str(default_root())


def hosted() -> bool:
    return current_caps().profile == "hosted"
