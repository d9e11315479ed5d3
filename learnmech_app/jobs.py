"""Live training jobs: a worker thread per job, a FIFO queue capping concurrent training.

No Streamlit here. A `Job` belongs to one session (it lives in its session state); its worker thread
trains the job's specs one after another and writes progress into the job under a lock; the page's
fragment polls `job.snapshot()` to draw progress and live charts. All sessions share one `Limiter`
(held by the app as a cached resource) so at most `max_concurrent_runs` runs train at once; the
others wait in a first-come-first-served queue and can see their place in it.

A run already in one of the job's stores (the session's store or the read-only gallery) is read
instead of trained. Finished runs (ok, diverged, failed) go to the store; stopped ones do not. A job
whose session stops polling for `heartbeat_timeout_s` (tab closed) stops by itself; the default is
generous (10 minutes) because browsers throttle the polling timers of background tabs to about one a
minute, and a run must not stop because its visitor looked at another tab.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from learnmech_core.config import RunSpec
from learnmech_core.train import Progress, Run, train

FINISHED = ("ok", "diverged", "stopped", "failed")


class Limiter:
    """First-come-first-served cap on concurrent training across all sessions of the server."""

    def __init__(self, slots: int):
        self.slots = max(int(slots), 1)
        self._cond = threading.Condition()
        self._queue: list[int] = []
        self._running: set[int] = set()
        self._tickets = itertools.count(1)

    def ticket(self) -> int:
        return next(self._tickets)

    def acquire(self, ticket: int, should_stop: Callable[[], bool] = lambda: False, poll_s: float = 0.2) -> bool:
        """Wait for a slot in queue order; False (and out of the queue) if should_stop() turns True."""
        with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    if should_stop():
                        return False
                    if self._queue[0] == ticket and len(self._running) < self.slots:
                        self._running.add(ticket)
                        return True
                    self._cond.wait(poll_s)
            finally:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self, ticket: int) -> None:
        with self._cond:
            self._running.discard(ticket)
            self._cond.notify_all()

    def position(self, ticket: int) -> int | None:
        """1-based place in the waiting queue, or None when not waiting."""
        with self._cond:
            return self._queue.index(ticket) + 1 if ticket in self._queue else None

    def load(self) -> tuple[int, int]:
        """(runs training now, runs waiting)."""
        with self._cond:
            return len(self._running), len(self._queue)


@dataclass
class RunState:
    """What the job knows about one of its runs (copied out by `snapshot`)."""

    spec: RunSpec
    state: str = "pending"  # pending | queued | running | stored | ok | diverged | stopped | failed
    rows: list = field(default_factory=list)
    step: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    eta_s: float = float("nan")
    queue_position: int | None = None
    message: str = ""
    run: Run | None = None
    source: str = ""  # "store" or "gallery" when read, "trained" when trained

    @property
    def key(self) -> str:
        return self.spec.key()

    @property
    def finished(self) -> bool:
        return self.state in FINISHED or self.state == "stored"

    def as_run(self) -> Run:
        """The finished run, or a partial one (history so far, status 'running'/'queued') for live charts."""
        if self.run is not None:
            return self.run
        status = {"pending": "queued", "queued": "queued"}.get(self.state, self.state)
        return Run(spec=self.spec, history=pd.DataFrame(self.rows), status=status, message=self.message)


class Job:
    """Trains a list of specs in a worker thread; progress and results are read with `snapshot()`."""

    def __init__(self, specs: list[RunSpec], store, limiter: Limiter, sources: list | None = None,
                 tags: list[str] | None = None, heartbeat_timeout_s: float = 600.0, trainer=train):
        if not specs:
            raise ValueError("a job needs at least one run")
        self.specs = list(specs)
        self.store = store
        self.sources = [s for s in (sources or []) if s is not None]
        self.tags = list(tags or [])
        self.limiter = limiter
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._trainer = trainer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._states = [RunState(spec=s, total=s.optim.steps) for s in self.specs]
        self._thread: threading.Thread | None = None
        self._ticket = limiter.ticket()
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.error = ""
        self._heartbeat = time.monotonic()
        self.version = 0  # bumps on every change, so pollers can skip redraws

    # --- control (script thread) ---------------------------------------------------------------
    def start(self) -> "Job":
        self._thread = threading.Thread(target=self._work, name=f"learnmech-job-{self._ticket}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def heartbeat(self) -> None:
        """Called by the session's pollers; a job nobody polls for a while stops."""
        self._heartbeat = time.monotonic()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker finishes (tests and benchmarks); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    def snapshot(self) -> list[RunState]:
        """Copies of the run states (rows copied; safe to read while the worker goes on)."""
        with self._lock:
            return [RunState(spec=s.spec, state=s.state, rows=list(s.rows), step=s.step, total=s.total,
                             elapsed_s=s.elapsed_s, eta_s=s.eta_s, message=s.message, run=s.run, source=s.source,
                             queue_position=self.limiter.position(self._ticket) if s.state == "queued" else None)
                    for s in self._states]

    def progress(self) -> tuple[float, str]:
        """(fraction done over all runs, one line of text) for a progress bar."""
        states = self.snapshot()
        total = sum(max(s.total, 1) for s in states)
        done = sum(max(s.total, 1) if s.finished else min(s.step, s.total) for s in states)
        fraction = done / total if total else 1.0
        current = next((s for s in states if s.state in ("running", "queued")), None)
        n_done = sum(s.finished for s in states)
        if self.done:
            text = f"finished {n_done} of {len(states)} runs"
        elif current is None:
            text = "starting"
        elif current.state == "queued":
            pos = current.queue_position
            running, waiting = self.limiter.load()
            text = (f"waiting for a free training slot: place {pos} in the queue ({running} running)" if pos
                    else "waiting for a free training slot")
        else:
            eta = f", about {current.eta_s:.0f} s left" if current.eta_s == current.eta_s else ""
            text = f"run {n_done + 1} of {len(states)}: step {current.step} of {current.total}{eta}"
        return min(max(fraction, 0.0), 1.0), text

    def runs(self) -> list[Run]:
        """Finished runs so far, in spec order."""
        return [s.run for s in self.snapshot() if s.run is not None]

    # --- worker thread ---------------------------------------------------------------------------
    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        if time.monotonic() - self._heartbeat > self.heartbeat_timeout_s:
            self._stop.set()
            self.error = "stopped: the page stopped asking for progress (tab closed?)"
            return True
        return False

    def _set(self, i: int, **changes) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self._states[i], k, v)
            self.version += 1

    def _lookup(self, spec: RunSpec) -> tuple[Run | None, str]:
        key = spec.key()
        for name, store in [("store", self.store)] + [("gallery", s) for s in self.sources]:
            try:
                if store is not None and store.has(key):
                    run = store.get(key)
                    if run is not None:
                        return run, name
            except Exception:  # a damaged stored run is trained again
                continue
        return None, ""

    def _work(self) -> None:
        try:
            for i, spec in enumerate(self.specs):
                if self._should_stop():
                    self._set(i, state="stopped", message="not started: the job was stopped")
                    continue
                run, source = self._lookup(spec)
                if run is not None:
                    if self.tags and source == "store" and not getattr(self.store, "readonly", True):
                        try:
                            self.store.put(run, tags=self.tags)  # merges the tags
                        except Exception:
                            pass
                    self._set(i, state="stored", run=run, source=source, rows=[],
                              step=spec.optim.steps, message=f"read from the {source}")
                    continue
                self._train_one(i, spec)
        except Exception as err:  # never let the worker die silently
            self.error = f"{type(err).__name__}: {err}"
        finally:
            with self._lock:
                self.finished_at = time.time()
                self.version += 1

    def _train_one(self, i: int, spec: RunSpec) -> None:
        self._set(i, state="queued")
        if not self.limiter.acquire(self._ticket, self._should_stop):
            self._set(i, state="stopped", message="stopped while waiting in the queue")
            return
        try:
            self._set(i, state="running")
            state = self._states[i]

            def on_progress(p: Progress) -> None:
                with self._lock:
                    state.rows.append(dict(p.row))
                    state.step, state.elapsed_s, state.eta_s = p.step, p.elapsed_s, p.eta_s
                    self.version += 1

            run = self._trainer(spec, on_progress=on_progress, should_stop=self._should_stop)
        finally:
            self.limiter.release(self._ticket)
        stored = ""
        if run.status != "stopped" and self.store is not None and not getattr(self.store, "readonly", False):
            try:
                self.store.put(run, tags=self.tags)
                stored = "stored"
            except Exception as err:
                stored = f"could not be stored ({type(err).__name__}: {err})"
        message = run.message or ""
        if stored and stored != "stored":
            message = (message + "; " if message else "") + stored
        self._set(i, state=run.status, run=run, message=message, source="trained",
                  step=int(run.history["step"].max()) if len(run.history) else 0)
