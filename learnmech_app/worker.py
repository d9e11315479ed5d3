"""A training worker: receives runs over a pipe, trains them one at a time, streams progress back.

No Streamlit here. The same `serve(conn)` loop runs in a worker process (`process_main`, started by
the pool from a forkserver) or on a thread of the server (`thread` mode: AppTest, and the old
in-process design kept for comparison). Messages are tuples:

- to the worker: ("train", task_id, spec_json, upload, trainer, boundary), ("stop", task_id),
  ("lr", task_id, value), ("pause", task_id, bool), ("exit",);
- from the worker: ("ready", pid), ("rows", task_id, rows, step, total, elapsed_s, eta_s),
  ("lr", task_id, step, value), ("paused", task_id, bool), ("grid", task_id, Boundary),
  ("done", task_id, Run), ("error", task_id, message).

Rows are sent in batches (at most every `FLUSH_S`), so a fast small model does not flood the server
with one message a step. Control messages are read between steps (`conn.poll()` costs microseconds),
so Stop, a new learning rate and Pause take effect at the next step; a paused run waits in
`control()` until resumed, stopped, or its wall-time cap is reached.

Importing this module imports torch, torch._dynamo and the measurement modules. The pool hands it to
the forkserver as its preload, so each worker forks from a process that has already paid for them:
measured here (2 busy cores), a worker started in 0.27-0.32 s and trained its first tiny run in
0.06-0.12 s, with 25 MB of private memory (PSS 142 MB); spawned fresh it took 10-16 s and its first
optimiser step 4.6 s more (the torch._dynamo import), with 251 MB private.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time

import torch
import torch._dynamo  # noqa: F401  (the first optimiser step imports it: 1-15 s; paid once in the forkserver)

from learnmech_core import boundary as boundary_mod
from learnmech_core import curvature, probes, spectra  # noqa: F401  (imported once, before forking)
from learnmech_core.config import RunSpec, current_caps
from learnmech_core.data import describe, register_array_dataset
from learnmech_core.train import Progress

FLUSH_S = 0.25  # rows are sent at most this often
GRID_S = 0.5  # a live decision boundary at most this often
DEFAULT_TRAINER = "learnmech_core.train:train"


def process_main(conn, threads: int = 1, nice: int = 10) -> None:
    """Entry point of a worker process: lower priority, `threads` torch threads, then serve."""
    with contextlib.suppress(OSError):
        os.nice(nice)
    torch.set_num_threads(max(int(threads), 1))
    conn.send(("ready", os.getpid()))
    serve(conn)


def serve(conn) -> None:
    """Train what arrives until ("exit",) or the other end closes."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "exit":
            return
        if msg[0] != "train":
            continue  # a control message for a run that has already ended
        _, task_id, spec_json, upload, trainer, boundary = msg
        session = _Session(conn, task_id)
        try:
            run = session.train(spec_json, upload, trainer or DEFAULT_TRAINER, boundary)
        except Exception as err:  # never let the worker die on one run
            _send(conn, ("error", task_id, f"{type(err).__name__}: {err}"))
            continue
        if not _send(conn, ("done", task_id, run)) or session.exiting:
            return


def _send(conn, msg) -> bool:
    try:
        conn.send(msg)
        return True
    except (OSError, EOFError, BrokenPipeError):
        return False


def load_trainer(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class _Session:
    """One run in the worker: the callbacks `train` consults, fed by the control messages."""

    def __init__(self, conn, task_id: int):
        self.conn, self.task_id = conn, task_id
        self.stopping = self.paused = self.exiting = False
        self.pending_lr: float | None = None
        self.rows: list[dict] = []
        self.last_flush = self.last_grid = 0.0
        self.progress: Progress | None = None
        self.started = time.perf_counter()
        self.grid = None  # (xs, ys, loss, n_classes) when a live decision boundary is wanted

    def train(self, spec_json: str, upload, trainer: str, boundary: bool):
        if upload is not None:  # an uploaded dataset lives in the server's memory: register it here too
            register_array_dataset(*upload)
        spec = RunSpec.from_json(spec_json)
        data = None
        if boundary and boundary_mod.supports(describe(spec.data)):
            from learnmech_core.data import load

            data = load(spec.data)
            xs, ys = boundary_mod.grid_axes(data.x_train)
            self.grid = (xs, ys, spec.optim.loss, data.info.n_outputs)
        fn = load_trainer(trainer)
        kwargs = {"data": data} if data is not None else {}
        run = fn(spec, on_progress=self.on_progress, should_stop=self.should_stop, control=self.control, **kwargs)
        self.flush()
        return run

    # --- callbacks of train() ----------------------------------------------------------------------
    def on_progress(self, p: Progress) -> None:
        self.rows.append(dict(p.row))
        self.progress = p
        if time.perf_counter() - self.last_flush >= FLUSH_S or p.step >= p.total:
            self.flush()

    def should_stop(self) -> bool:
        self.pump()
        return self.stopping

    def control(self, step: int, model) -> float | None:
        self.pump()
        if self.paused:
            self.flush()
            self.send_grid(step, model)
            cap = current_caps().max_wall_s
            while self.paused and not self.stopping and time.perf_counter() - self.started < cap:
                if self.conn.poll(0.2):
                    self.pump()
        if self.grid is not None and time.perf_counter() - self.last_grid >= GRID_S:
            self.send_grid(step, model)
        new, self.pending_lr = self.pending_lr, None
        if new is not None:
            _send(self.conn, ("lr", self.task_id, step, float(new)))
        return new

    # --- messages ----------------------------------------------------------------------------------------
    def pump(self) -> None:
        """Read every control message waiting on the pipe (non-blocking)."""
        try:
            while self.conn.poll():
                self.handle(self.conn.recv())
        except (EOFError, OSError):  # the server went away: stop this run and the worker
            self.stopping = self.exiting = True

    def handle(self, msg) -> None:
        kind = msg[0]
        if kind == "exit":
            self.stopping = self.exiting = True
        elif len(msg) < 2 or msg[1] != self.task_id:
            return  # meant for an earlier run
        elif kind == "stop":
            self.stopping = True
        elif kind == "lr":
            self.pending_lr = float(msg[2])
        elif kind == "pause":
            self.paused = bool(msg[2])
            _send(self.conn, ("paused", self.task_id, self.paused))

    def flush(self) -> None:
        self.last_flush = time.perf_counter()
        if not self.rows or self.progress is None:
            return
        p = self.progress
        _send(self.conn, ("rows", self.task_id, self.rows, p.step, p.total, p.elapsed_s, p.eta_s))
        self.rows = []

    def send_grid(self, step: int, model) -> None:
        if self.grid is None:
            return
        self.last_grid = time.perf_counter()
        xs, ys, loss, n_classes = self.grid
        try:
            grid = boundary_mod.predict_grid(model, xs, ys, loss, n_classes, step)
        except Exception:  # a live picture is a nicety; never fail the run for it
            self.grid = None
            return
        _send(self.conn, ("grid", self.task_id, grid))
