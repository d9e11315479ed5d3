"""Trainers that misbehave on purpose, for tests/test_pool.py and tests/test_jobs.py.

The pool hands a worker a trainer by its dotted path ("tests.pool_trainers:crash"); each has the
signature of `learnmech_core.train.train`.
"""

from __future__ import annotations

import os
import signal
import time

import pandas as pd

from learnmech_core.train import Progress, Run, train

CALLS: list[str] = []  # keys trained by `counted` (thread mode: the same process as the test)


def _first_row(spec, on_progress) -> None:
    on_progress(Progress(0, spec.optim.steps, {"step": 0, "loss": 1.0, "lr": spec.optim.lr}, 0.0))


def crash(spec, on_progress=None, should_stop=None, control=None, data=None) -> Run:
    """Dies in native-code style: SIGKILL to itself after the first row."""
    _first_row(spec, on_progress)
    time.sleep(0.3)  # let the row reach the server
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def stuck(spec, on_progress=None, should_stop=None, control=None, data=None) -> Run:
    """One step that never ends and never asks whether to stop."""
    _first_row(spec, on_progress)
    time.sleep(600)
    return Run(spec, pd.DataFrame())


def hog(spec, on_progress=None, should_stop=None, control=None, data=None) -> Run:
    """Takes 40 MB more resident memory every 50 ms, up to 2 GB."""
    _first_row(spec, on_progress)
    blocks = []
    for _ in range(50):
        blocks.append(b"\x01" * (40 * 2**20))
        time.sleep(0.05)
        if should_stop():
            break
    return Run(spec, pd.DataFrame({"step": [0], "loss": [1.0]}))


def peak(spec, on_progress=None, should_stop=None, control=None, data=None) -> Run:
    """The real trainer, reporting the process's peak resident memory (VmHWM, MB) in run.timings."""
    run = train(spec, on_progress=on_progress, should_stop=should_stop, control=control, data=data)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                run.timings["peak_rss_mb"] = int(line.split()[1]) / 1024
    return run


def counted(spec, on_progress=None, should_stop=None, control=None, data=None) -> Run:
    """A fake trainer of 0.01 s a step that records which keys it trained."""
    CALLS.append(spec.key())
    rows = []
    for step in range(spec.optim.steps + 1):
        row = {"step": step, "time_s": step * 0.01, "loss": 1.0 / (step + 1), "lr": spec.optim.lr}
        rows.append(row)
        on_progress(Progress(step, spec.optim.steps, row, step * 0.01))
        if should_stop():
            return Run(spec, pd.DataFrame(rows), status="stopped", message="stopped by the user")
        if control is not None:
            control(step, None)
        time.sleep(0.01)
    return Run(spec, pd.DataFrame(rows))
