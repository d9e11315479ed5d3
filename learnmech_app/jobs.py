"""Live training jobs: what one session asked to train, read from the store or trained by the pool.

No Streamlit here. A `Job` belongs to one session (it lives in its session state). A light thread of
the server walks through the job's specs one after another: a run already in one of the job's stores
(the session-shared store, then the read-only gallery) is read; one whose estimated memory exceeds the
profile's cap is refused with a message naming the cap; the rest are submitted to the shared
`TrainingPool` (pool.py), which trains them in worker processes, queues them first come first served
and trains identical specs once. The page's fragment polls `job.snapshot()` to draw progress, the
queue place and live charts; `set_lr` and `pause` steer the run that is training.

Stop detaches the job at once: its runs show "stopped" with the curve so far, and the pool stops the
training unless another session is watching the same run. A job whose session stops polling for
`heartbeat_timeout_s` (tab closed) stops by itself; the default is generous (10 minutes) because
browsers throttle the polling timers of background tabs to about one a minute.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from learnmech_core.config import RunSpec
from learnmech_core.train import Run

from .pool import FINISHED, Task, TrainingPool


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
    grid: object = None  # the live decision boundary (learnmech_core.boundary.Boundary), 2-D data only
    paused: bool = False

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
    """A session's list of specs, trained by the shared pool; progress and results via `snapshot()`."""

    def __init__(self, specs: list[RunSpec], store, pool: TrainingPool, sources: list | None = None,
                 tags: list[str] | None = None, heartbeat_timeout_s: float = 600.0, boundary: bool = False,
                 refuse: Callable[[RunSpec], str] | None = None):
        if not specs:
            raise ValueError("a job needs at least one run")
        self.specs = list(specs)
        self.store = store
        self.sources = [s for s in (sources or []) if s is not None]
        self.tags = list(tags or [])
        self.pool = pool
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.boundary = boundary
        self._refuse = refuse
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._states = [RunState(spec=s, total=s.optim.steps) for s in self.specs]
        self._tasks: list[Task | None] = [None] * len(self.specs)  # the pool's task while this job watches it
        self._thread: threading.Thread | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.error = ""
        self._heartbeat = time.monotonic()

    # --- control (script thread) ---------------------------------------------------------------
    def start(self) -> Job:
        self._thread = threading.Thread(target=self._work, name="learnmech-job", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop now: the runs not finished show 'stopped' with what was measured so far."""
        self._stop.set()
        with self.pool.changed:
            self.pool.changed.notify_all()

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
        """Block until every run has finished (tests and benchmarks); True if they did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    def training(self) -> Task | None:
        """The pool task of the run training now, if this job watches one."""
        with self._lock:
            return next((t for t in self._tasks if t is not None and t.state == "running"), None)

    def set_lr(self, lr: float) -> None:
        """Change the learning rate of the run training now, from its next step (ValueError says why not)."""
        task = self.training()
        if task is None:
            raise ValueError("no run of yours is training right now")
        self.pool.set_lr(task, lr)

    def pause(self, paused: bool) -> None:
        task = self.training()
        if task is None:
            raise ValueError("no run of yours is training right now")
        self.pool.pause(task, paused)

    def snapshot(self) -> list[RunState]:
        """Copies of the run states (safe to read while the pool trains)."""
        out = []
        with self.pool.changed, self._lock:
            for s, task in zip(self._states, self._tasks, strict=True):
                if task is None:
                    out.append(RunState(spec=s.spec, state=s.state, rows=list(s.rows), step=s.step, total=s.total,
                                        elapsed_s=s.elapsed_s, eta_s=s.eta_s, message=s.message, run=s.run,
                                        source=s.source, grid=s.grid))
                    continue
                out.append(RunState(spec=task.spec, state=task.state, rows=list(task.rows), step=task.step,
                                    total=task.total, elapsed_s=task.elapsed_s, eta_s=task.eta_s,
                                    queue_position=self.pool.position(task), message=task.message, run=task.run,
                                    source=task.source, grid=task.grid, paused=task.paused))
        return out

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
            running, _ = self.pool.load()
            if pos and not running:
                text = f"starting the training processes (place {pos} in the queue)"
            elif pos:
                text = f"waiting for a free training slot: place {pos} in the queue ({running} running)"
            else:
                text = "waiting for a free training slot"
        else:
            eta = f", about {current.eta_s:.0f} s left" if current.eta_s == current.eta_s else ""
            paused = " (paused)" if current.paused else ""
            text = f"run {n_done + 1} of {len(states)}: step {current.step} of {current.total}{eta}{paused}"
        return min(max(fraction, 0.0), 1.0), text

    def runs(self) -> list[Run]:
        """Finished runs so far, in spec order."""
        return [s.run for s in self.snapshot() if s.run is not None]

    # --- the job's thread --------------------------------------------------------------------------
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
                    self._read(i, spec, run, source)
                    continue
                refused = self._refuse(spec) if self._refuse is not None else ""
                if refused:
                    self._set(i, state="failed", message=refused)
                    continue
                self._train(i, spec)
        except Exception as err:  # never let the job's thread die silently
            self.error = f"{type(err).__name__}: {err}"
        finally:
            with self._lock:
                self.finished_at = time.time()
            with self.pool.changed:
                self.pool.changed.notify_all()

    def _read(self, i: int, spec: RunSpec, run: Run, source: str) -> None:
        if self.tags and source == "store" and not getattr(self.store, "readonly", True):
            with contextlib.suppress(Exception):  # tags are a convenience; the run is there
                self.store.put(run, tags=self.tags)  # merges the tags
        self._set(i, state="stored", run=run, source=source, rows=[], step=spec.optim.steps,
                  message=f"read from the {source}")

    def _train(self, i: int, spec: RunSpec) -> None:
        task = self.pool.submit(spec, boundary=self.boundary, tags=self.tags)
        with self._lock:
            self._tasks[i] = task
        with self.pool.changed:
            while not task.finished and not self._should_stop():
                self.pool.changed.wait(0.25)
            finished = task.finished
        if finished and task.source == "store":  # trained meanwhile (by another session)
            with self._lock:
                self._tasks[i] = None
            self._read(i, spec, task.run, "store")
            return
        if finished:
            with self._lock:
                self._tasks[i] = None
                s = self._states[i]
                s.spec, s.state, s.run, s.message, s.source = task.spec, task.state, task.run, task.message, task.source
                s.rows, s.step, s.total, s.grid = [], task.step, task.total, task.grid
            return
        with self.pool.changed:  # stopped by this session: keep the curve so far, let go of the task
            rows, step, grid, spec_now = list(task.rows), task.step, task.grid, task.spec
        self.pool.leave(task)
        with self._lock:
            self._tasks[i] = None
            s = self._states[i]
            s.spec, s.state, s.rows, s.step, s.grid = spec_now, "stopped", rows, step, grid
            s.message = f"stopped by you at step {step}" if rows else "stopped before it started"
