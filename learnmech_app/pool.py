"""The training pool every session shares: a first-come-first-served queue and warm worker processes.

No Streamlit here. `TrainingPool.submit(spec)` returns a `Task` that jobs (one per session and page)
watch; a dispatcher thread hands queued tasks to idle workers, reads their progress, and keeps the
promises the app makes:

- **Out of the server.** In `process` mode each worker is a process forked from a forkserver that
  preloaded torch and the training code (`worker.py`), at lower priority (nice) and with its own
  torch threads, so training never holds the server's GIL. `thread` mode trains on threads of this
  process instead (AppTest, and the old design kept for comparison in `benchmarks/load.py`); the
  queue, messages and bookkeeping are the same.
- **Identical specs train once.** A spec whose key is queued or training joins that task (its rows,
  its result); a key already in the store comes back finished at once.
- **Stop within a second.** A task nobody watches any more is told to stop; a process worker that
  has not finished its step `stop_grace_s` later is killed and replaced.
- **A crash is a failed run.** A worker process that dies (killed, out of memory, a crash in native
  code) fails its task with the exit code; the other workers and the server go on, and a new
  worker takes its place.
- **Bounded memory.** A process worker whose resident memory passes `memory_cap_mb` is killed and
  its task fails with a message naming the cap (runs estimated to need more are refused before they
  are queued, by the caller).

Failed-by-the-worker and stopped runs are not stored (trying again may succeed); every other finished
run is written to the store before its task reports it, so a later lookup finds it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for

import pandas as pd

from learnmech_core.config import RunSpec
from learnmech_core.registry import UPLOAD_PREFIX
from learnmech_core.train import Run

FINISHED = ("ok", "diverged", "stopped", "failed")
PRELOAD = ["learnmech_app.worker"]


@dataclass(eq=False)  # a task is itself: compared (in the queue) by identity
class Task:
    """One spec being trained (or waiting), shared by every job that asked for it."""

    id: int
    spec: RunSpec
    key: str
    boundary: bool = False
    tags: set = field(default_factory=set)
    state: str = "queued"  # queued | running | ok | diverged | stopped | failed
    rows: list = field(default_factory=list)
    step: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    eta_s: float = float("nan")
    message: str = ""
    run: Run | None = None
    grid: object = None  # the latest live decision boundary (learnmech_core.boundary.Boundary)
    paused: bool = False
    private: bool = False  # changed by its one viewer (lr, pause): no longer joinable by key
    subscribers: int = 1
    source: str = "trained"  # "store" when it came finished from the store
    stop_requested_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _plain_main():
    """Start processes with a `__main__` that has no file.

    A forkserver (or spawn) child re-imports its parent's `__main__` module; under Streamlit that is the
    page script a session is running (app.py), which must not run again in a worker (it would start a
    pool of its own). With a stand-in that has no `__file__` and no `__spec__` there is nothing to import.
    """
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        stub = types.ModuleType("__main__")
        sys.modules["__main__"] = stub
        try:
            yield
        finally:
            if sys.modules.get("__main__") is stub:  # a script run may have installed its own meanwhile
                sys.modules["__main__"] = main


class _Worker:
    """A worker process (or thread) and its end of the pipe."""

    def __init__(self, mode: str, threads: int, nice: int):
        from . import worker

        self.conn, child = mp.Pipe()
        self.task: Task | None = None
        self.mode = mode
        if mode == "process":
            ctx = mp.get_context("forkserver")
            self.proc = ctx.Process(target=worker.process_main, args=(child, threads, nice), daemon=True,
                                    name="learnmech-worker")
            with _plain_main():
                self.proc.start()
            self.pid = self.proc.pid
        else:
            self.proc = threading.Thread(target=worker.serve, args=(child,), daemon=True, name="learnmech-worker")
            self.proc.start()
            self.pid = os.getpid()
        if mode == "process":
            child.close()  # the worker holds its end: EOF here when it dies

    def alive(self) -> bool:
        return self.proc.is_alive()

    def exit_text(self) -> str:
        code = getattr(self.proc, "exitcode", None)
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
        if self.mode == "process" and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


class TrainingPool:
    """A FIFO queue of tasks and `workers` workers that train them (see the module docstring)."""

    def __init__(self, workers: int = 1, mode: str = "process", store=None, memory_cap_mb: float | None = None,
                 threads: int = 1, nice: int = 10, trainer: str | None = None, stop_grace_s: float = 0.8,
                 profile: str = "local"):
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be process or thread (got {mode!r})")
        self.slots = max(int(workers), 1)
        self.mode, self.store, self.memory_cap_mb = mode, store, memory_cap_mb
        self.threads, self.nice, self.trainer, self.stop_grace_s = threads, nice, trainer, stop_grace_s
        self.profile = profile
        self.changed = threading.Condition(threading.RLock())
        self._lock = self.changed
        self._queue: list[Task] = []
        self._by_key: dict[str, Task] = {}
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = mp.Pipe(duplex=False)
        self._closed = False
        self._spawning = threading.Lock()
        self._last_memory_check = 0.0
        self.replaced = 0  # workers replaced after a crash, a kill or the memory cap (for tests and the sidebar)
        if mode == "process":
            mp.get_context("forkserver").set_forkserver_preload(PRELOAD)

    # --- what jobs call -------------------------------------------------------------------------------
    def submit(self, spec: RunSpec, boundary: bool = False, tags=()) -> Task:
        """The task training this spec: a running or queued one with the same key, one finished from the
        store, or a new one at the end of the queue."""
        key = spec.key()
        with self._lock:
            task = self._by_key.get(key)
            if task is not None and not task.finished and not task.private:
                task.subscribers += 1
                task.boundary = task.boundary or boundary
                task.tags.update(tags)
                return task
            stored = self._stored(key)
            if stored is not None:
                return Task(next(self._ids), spec, key, state=stored.status, run=stored, source="store",
                            total=spec.optim.steps, step=spec.optim.steps, subscribers=0)
            task = Task(next(self._ids), spec, key, boundary=boundary, tags=set(tags), total=spec.optim.steps)
            self._queue.append(task)
            self._by_key[key] = task
            self._touch(task)
            self._ensure_dispatcher()
        self._wake()
        return task

    def leave(self, task: Task) -> None:
        """A watcher lets go of a task (its job stopped); a task nobody watches stops."""
        with self._lock:
            task.subscribers = max(task.subscribers - 1, 0)
            if task.subscribers or task.finished:
                return
            if task in self._queue:
                self._queue.remove(task)
                self._finish(task, "stopped", message="stopped while waiting in the queue")
            elif task.stop_requested_at is None:
                task.stop_requested_at = time.monotonic()
                self._send_to(task, ("stop", task.id))
        self._wake()

    def set_lr(self, task: Task, lr: float) -> None:
        """A new base learning rate for a training task, from its next step (a task shared by several
        visitors is not changed: it is theirs too)."""
        self._control(task, ("lr", task.id, float(lr)))

    def pause(self, task: Task, paused: bool) -> None:
        self._control(task, ("pause", task.id, bool(paused)))

    def position(self, task: Task) -> int | None:
        """1-based place in the queue, or None when not waiting."""
        with self._lock:
            return self._queue.index(task) + 1 if task in self._queue else None

    def load(self) -> tuple[int, int]:
        """(tasks training now, tasks waiting)."""
        with self._lock:
            return sum(w.task is not None for w in self._workers), len(self._queue)

    def wait(self, task: Task, timeout: float | None = None) -> bool:
        """Block until the task has finished (tests and benchmarks); True if it did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while not task.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.changed.wait(min(left, 0.5) if left is not None else 0.5)
        return True

    def warm(self) -> None:
        """Start the workers now (at server start), so the first Run does not wait for them."""
        self._spawn_missing()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for w in self._workers:
                self._send_exit(w)
            self._workers = []
        self._wake()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._workers if w.mode == "process"]

    # --- internals (called with the lock held unless said otherwise) ------------------------------------
    def _stored(self, key: str) -> Run | None:
        try:
            if self.store is not None and self.store.has(key):
                return self.store.get(key)
        except Exception:  # a damaged stored run is trained again
            return None
        return None

    def _control(self, task: Task, msg: tuple) -> None:
        with self._lock:
            if task.finished:
                raise ValueError("this run has already finished")
            if task.subscribers > 1:
                raise ValueError(f"this run is shared with {task.subscribers - 1} other visitor(s) who started the "
                                 "same settings; change the seed to get a run of your own to steer")
            if task in self._queue:
                raise ValueError("this run is still waiting in the queue; steer it once it trains")
            task.private = True  # no one else joins a run that is being steered
            if self._by_key.get(task.key) is task:
                del self._by_key[task.key]
            self._send_to(task, msg)

    def _send_to(self, task: Task, msg: tuple) -> None:
        for w in self._workers:
            if w.task is task:
                with contextlib.suppress(OSError):
                    w.conn.send(msg)
                return

    def _touch(self, task: Task) -> None:
        self.changed.notify_all()

    def _finish(self, task: Task, state: str, run: Run | None = None, message: str = "") -> None:
        task.state = state
        task.run = run
        task.message = message or (run.message if run is not None else "")
        task.paused = False
        if self._by_key.get(task.key) is task:
            del self._by_key[task.key]
        self._touch(task)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"1")

    def _ensure_dispatcher(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._dispatch, name="learnmech-pool", daemon=True)
            self._thread.start()

    def _spawn_missing(self) -> None:
        """Start workers up to `slots`, without holding the pool's lock (the first start of the forkserver
        imports torch: seconds, during which pages must still read their jobs)."""
        with self._spawning:
            with self._lock:
                missing = 0 if self._closed else self.slots - len(self._workers)
            started = [_Worker(self.mode, self.threads, self.nice) for _ in range(max(missing, 0))]
            with self._lock:
                self._workers.extend(started)

    def _dispatch(self) -> None:
        """Hand out queued tasks, read progress, watch the workers; ends when nothing is queued or running."""
        while True:
            try:
                if not self._step():
                    return
            except Exception:  # keep serving the other tasks; the failure goes to the server log
                logging.getLogger("learnmech.pool").exception("training pool dispatcher")
                time.sleep(0.1)

    def _step(self) -> bool:
        """One round of the dispatcher; False when it should end."""
        self._spawn_missing()
        with self._lock:
            if self._closed:
                return False
            self._assign()
            busy = [w for w in self._workers if w.task is not None]
            if not busy and not self._queue:
                if self.mode == "thread":  # threads are cheap to start again; leave none behind
                    for w in self._workers:
                        self._send_exit(w)
                    self._workers = []
                self._thread = None
                return False
        ready = wait_for([w.conn for w in busy] + [self._wake_r], timeout=0.1)
        if self._wake_r in ready:
            while self._wake_r.poll():
                self._wake_r.recv_bytes()
        for w in busy:
            if w.conn in ready:
                self._read(w)
        with self._lock:
            self._watch()
        return True

    def _send_exit(self, w: _Worker) -> None:
        with contextlib.suppress(OSError):
            w.conn.send(("exit",))
        w.close()

    def _assign(self) -> None:
        for w in list(self._workers):
            if w.task is None and not w.alive():
                self._workers.remove(w)
                w.close()
        for w in self._workers:
            if not self._queue:
                return
            if w.task is not None:
                continue
            task = self._queue.pop(0)
            stored = self._stored(task.key)  # trained meanwhile by someone else
            if stored is not None:
                self._finish(task, stored.status, stored)
                task.source = "store"
                continue
            upload = None
            if task.spec.data.name.startswith(UPLOAD_PREFIX):
                from learnmech_core.data import upload_arrays

                upload = upload_arrays(task.spec.data.name)
            try:
                w.conn.send(("train", task.id, task.spec.to_json(), upload, self.trainer, task.boundary))
            except OSError as err:
                self._finish(task, "failed", message=f"the training process could not take the run ({err})")
                continue
            w.task = task
            task.state = "running"
            self._touch(task)

    def _read(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                with self._lock:
                    self._handle(w, msg)
        except (EOFError, OSError):
            pass  # a dead worker: _watch fails its task

    def _handle(self, w: _Worker, msg: tuple) -> None:
        kind = msg[0]
        if kind == "ready":
            return
        task = w.task
        if task is None or msg[1] != task.id:
            return
        if kind == "rows":
            _, _, rows, step, total, elapsed, eta = msg
            task.rows.extend(rows)
            task.step, task.total, task.elapsed_s, task.eta_s = step, total, elapsed, eta
        elif kind == "lr":
            _, _, step, lr = msg
            changes = dict(task.spec.optim.lr_changes)
            changes[int(step)] = lr
            task.spec = task.spec.replace(**{"optim.lr_changes": tuple(sorted(changes.items()))})
        elif kind == "paused":
            task.paused = bool(msg[2])
        elif kind == "grid":
            task.grid = msg[2]
        elif kind in ("done", "error"):
            w.task = None
            if kind == "error":
                self._finish(task, "failed", message=msg[2])
            else:
                run = msg[2]
                stored = self._store(run, task.tags) if run.status != "stopped" else ""
                if run.status == "stopped" and task.stop_requested_at is not None:
                    run.message = run.message or "stopped"
                task.spec = run.spec
                if run.history is not None and len(run.history):
                    task.step = int(run.history["step"].max())
                self._finish(task, run.status, run, message="; ".join(m for m in (run.message, stored) if m))
            return
        self._touch(task)

    def _store(self, run: Run, tags) -> str:
        if self.store is None or getattr(self.store, "readonly", False):
            return ""
        try:
            self.store.put(run, tags=sorted(tags))
            return ""
        except Exception as err:
            return f"could not be stored ({type(err).__name__}: {err})"

    def _watch(self) -> None:
        """Dead workers fail their task; a stop not honoured in time or a run over the memory cap kills the worker."""
        now = time.monotonic()
        check_memory = self.mode == "process" and self.memory_cap_mb and now - self._last_memory_check >= 0.25
        if check_memory:
            self._last_memory_check = now
        for w in list(self._workers):
            task = w.task
            if task is None:
                continue
            if not w.alive():
                self._replace(w)
                if task.stop_requested_at is not None:
                    self._finish(task, "stopped", self._stopped_run(task), "stopped")
                else:
                    self._finish(task, "failed", message=f"the training process ended unexpectedly ({w.exit_text()}); "
                                                         "the run was not stored, so Run tries it again")
            elif (task.stop_requested_at is not None and now - task.stop_requested_at > self.stop_grace_s
                  and self.mode == "process"):
                self._replace(w, kill=True)
                self._finish(task, "stopped", self._stopped_run(task), "stopped (its training process was ended: "
                             f"a step took longer than {self.stop_grace_s:g} s)")
            elif check_memory and (used := w.rss_mb()) > self.memory_cap_mb:
                self._replace(w, kill=True)
                self._finish(task, "failed", message=f"stopped: it used {used:.0f} MB, more than the {self.profile} "
                                                     f"profile's cap of {self.memory_cap_mb:g} MB per run")

    def _replace(self, w: _Worker, kill: bool = False) -> None:
        w.task = None
        if kill:
            w.kill()
        else:
            w.close()
        if w in self._workers:
            self._workers.remove(w)
        self.replaced += 1  # the dispatcher starts a new worker in its next round

    @staticmethod
    def _stopped_run(task: Task) -> Run:
        return Run(spec=task.spec, history=pd.DataFrame(task.rows), status="stopped", message="stopped")
