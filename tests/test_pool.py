"""The training pool with real worker processes: out of this process, crash -> failed run, stop, memory.

Each test builds a small `TrainingPool` in process mode (workers forked from the forkserver that
preloads torch and the training code) and closes it afterwards. Trainers that misbehave on purpose
come from tests/pool_trainers.py, handed to the worker by their dotted path. Nothing here asserts on
wall time: waits are generous, and what is checked is the outcome (state, message, which process).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from learnmech_app.pool import TrainingPool
from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from learnmech_core.footprint import estimate_mb
from learnmech_core.store import RunStore

WAIT = 180  # seconds; generous for a shared 2-core machine (the forkserver imports torch once)


def tiny(**changes) -> RunSpec:
    spec = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name="moons", n_train=64, n_test=16),
                   optim=OptimSpec(steps=40, lr=0.1), probes=ProbeSpec(sharpness_every=10))
    return spec.replace(**changes) if changes else spec


@pytest.fixture
def make_pool(tmp_path):
    pools = []

    def make(**kwargs) -> TrainingPool:
        kwargs.setdefault("store", RunStore(tmp_path / "store"))
        pool = TrainingPool(mode="process", **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_runs_train_in_worker_processes_at_lower_priority_and_are_stored(make_pool):
    pool = make_pool(workers=2)
    tasks = [pool.submit(tiny(seed=s), boundary=True) for s in range(3)]
    assert all(pool.wait(t, WAIT) for t in tasks)
    assert [t.state for t in tasks] == ["ok", "ok", "ok"]
    for t in tasks:
        assert len(t.run.history) == 41 and t.run.history["step"].iloc[-1] == 40
        assert pool.store.has(t.key)
        assert t.grid is not None and t.grid.z.shape == (48, 48)  # the live decision boundary came back
    pids = pool.pids()
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(os.getpriority(os.PRIO_PROCESS, p) > os.getpriority(os.PRIO_PROCESS, 0) for p in pids)


def test_same_result_as_training_here(make_pool):
    from learnmech_core import train

    pool = make_pool(workers=1)
    task = pool.submit(tiny(seed=7))
    assert pool.wait(task, WAIT)
    here = train(tiny(seed=7))
    np.testing.assert_array_equal(task.run.history["loss"].to_numpy(), here.history["loss"].to_numpy())


def test_a_crashed_worker_fails_its_run_and_the_pool_goes_on(make_pool):
    pool = make_pool(workers=1, trainer="tests.pool_trainers:crash")
    task = pool.submit(tiny(seed=1))
    assert pool.wait(task, WAIT)
    assert task.state == "failed" and "ended unexpectedly" in task.message and "SIGKILL" in task.message
    assert task.rows, "the rows sent before the crash are kept"
    assert not pool.store.has(task.key), "a crashed run is not stored (trying again may work)"
    assert pool.replaced == 1
    pool.trainer = None  # the real trainer from now on: a new worker takes the next run
    again = pool.submit(tiny(seed=2))
    assert pool.wait(again, WAIT) and again.state == "ok"


def test_stop_ends_a_step_that_never_returns_by_replacing_the_worker(make_pool):
    pool = make_pool(workers=1, trainer="tests.pool_trainers:stuck", stop_grace_s=0.5)
    task = pool.submit(tiny(seed=3))
    with pool.changed:
        while not task.rows:
            assert pool.changed.wait(WAIT)
    pool.leave(task)  # the only watcher lets go: the run must stop
    assert pool.wait(task, WAIT)
    assert task.state == "stopped" and "process was ended" in task.message
    assert pool.replaced == 1 and len(task.run.history) == 1  # the curve so far


def test_stop_between_steps_keeps_the_worker(make_pool):
    pool = make_pool(workers=1)
    task = pool.submit(tiny(seed=4, **{"optim.steps": 5000}))
    with pool.changed:
        while not task.rows:
            assert pool.changed.wait(WAIT)
    pool.leave(task)
    assert pool.wait(task, WAIT)
    assert task.state == "stopped" and task.run is not None and 0 < len(task.run.history) < 5001
    assert pool.replaced == 0 and not pool.store.has(task.key)


def test_a_run_over_the_memory_cap_is_stopped_with_a_message_naming_the_cap(make_pool):
    pool = make_pool(workers=1, trainer="tests.pool_trainers:hog", memory_cap_mb=700, profile="hosted")
    task = pool.submit(tiny(seed=5))
    assert pool.wait(task, WAIT)
    assert task.state == "failed"
    assert "more than the hosted profile's cap of 700 MB per run" in task.message
    assert pool.replaced == 1


@pytest.mark.parametrize("spec", [
    tiny(seed=6),
    RunSpec(model=ModelSpec(arch="cnn", width=8, depth=2), data=DataSpec(name="digits", n_train=256, n_test=64),
            optim=OptimSpec(name="sgd", batch_size=64, steps=6), probes=ProbeSpec(sharpness_every=3)),
], ids=["mlp", "cnn"])
def test_the_memory_estimate_bounds_the_measured_peak(make_pool, spec):
    pool = make_pool(workers=1, trainer="tests.pool_trainers:peak")
    task = pool.submit(spec)
    assert pool.wait(task, WAIT) and task.state == "ok"
    peak = task.run.timings["peak_rss_mb"]
    assert 100 < peak <= estimate_mb(spec), (peak, estimate_mb(spec))


def test_an_uploaded_dataset_trains_in_a_worker(make_pool):
    from learnmech_core.data import register_array_dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    name = register_array_dataset(x, (x[:, 0] > 0).astype(int), "classification", "blobs.csv")
    spec = tiny(**{"data.name": name, "data.n_train": 40, "data.n_test": 20})
    pool = make_pool(workers=1)
    task = pool.submit(spec)
    assert pool.wait(task, WAIT)
    assert task.state == "ok", task.message
