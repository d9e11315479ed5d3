"""Jobs on the shared training pool: store lookups, the first-come-first-served queue, dedupe, stop,
steering (pause, a new learning rate) and refusal above the memory cap.

The pool runs in thread mode here (the same queue, messages and bookkeeping as process mode, the
worker loop on a thread), so these tests are quick; tests/test_pool.py covers the worker processes.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from learnmech_app.jobs import Job
from learnmech_app.pool import TrainingPool
from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, train
from learnmech_core.footprint import refusal
from learnmech_core.store import RunStore
from learnmech_core.train import Run
from tests import pool_trainers

FAKE = "tests.pool_trainers:counted"
WAIT = 60


def tiny(**changes) -> RunSpec:
    spec = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name="moons", n_train=64, n_test=16),
                   optim=OptimSpec(steps=4, lr=0.1), probes=ProbeSpec(sharpness_every=2))
    return spec.replace(**changes) if changes else spec


@pytest.fixture
def pool():
    pool_trainers.CALLS.clear()
    pools = []

    def make(workers=1, trainer=FAKE, store=None) -> TrainingPool:
        p = TrainingPool(workers, mode="thread", store=store if store is not None else RunStore(), trainer=trainer)
        pools.append(p)
        return p

    yield make
    for p in pools:
        p.close()


def wait_until(condition, timeout=WAIT) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_job_reads_stored_runs_trains_the_rest_and_stores_them(pool):
    store = RunStore()
    known = tiny(seed=5)
    store.put(Run(known, pd.DataFrame({"step": [0, 4], "loss": [1.0, 0.5]})))
    p = pool(store=store)
    job = Job([known, tiny(seed=6)], store, p, tags=["t:x"]).start()
    assert job.wait(WAIT)
    states = job.snapshot()
    assert [s.state for s in states] == ["stored", "ok"]
    assert store.has(tiny(seed=6).key()) and "t:x" in store.list(tag="t:x")["tags"].iloc[0]
    assert job.progress()[0] == 1.0
    assert [tiny(seed=6).key()] == pool_trainers.CALLS


def test_the_queue_is_first_come_first_served_and_shows_each_place(pool):
    p = pool(workers=1)
    specs = [tiny(seed=s, **{"optim.steps": 30}) for s in range(3)]
    jobs = []
    for spec in specs:
        jobs.append(Job([spec], p.store, p).start())
        wait_until(lambda: jobs[-1].snapshot()[0].state in ("queued", "running"))
    wait_until(lambda: jobs[0].snapshot()[0].state == "running")
    assert [j.snapshot()[0].queue_position for j in jobs] == [None, 1, 2]
    _, text = jobs[2].progress()
    assert "place 2 in the queue (1 running)" in text
    assert all(j.wait(WAIT) for j in jobs)
    assert [s.key() for s in specs] == pool_trainers.CALLS  # trained in the order they came


def test_identical_specs_are_trained_once(pool):
    p = pool(workers=2)
    spec = tiny(seed=8, **{"optim.steps": 20})
    jobs = [Job([spec], p.store, p).start() for _ in range(4)]
    assert all(j.wait(WAIT) for j in jobs)
    assert [spec.key()] == pool_trainers.CALLS
    assert {j.snapshot()[0].state for j in jobs} <= {"ok", "stored"}
    later = Job([spec], p.store, p).start()  # after it finished: read from the store
    assert later.wait(WAIT) and later.snapshot()[0].state == "stored" and len(pool_trainers.CALLS) == 1


def test_stop_keeps_the_partial_curve_and_stores_nothing(pool):
    p = pool()
    job = Job([tiny(**{"optim.steps": 2000}), tiny(seed=3)], p.store, p).start()
    wait_until(lambda: job.snapshot()[0].rows)
    job.stop()
    assert job.wait(WAIT)
    states = job.snapshot()
    assert states[0].state == "stopped" and states[0].rows and "stopped by you" in states[0].message
    assert states[1].state == "stopped" and "not started" in states[1].message
    wait_until(lambda: p.load() == (0, 0))  # the pool let go of the run too
    assert p.store.list().empty


def test_stop_in_one_session_does_not_disturb_another_watching_the_same_run(pool):
    p = pool()
    spec = tiny(seed=9, **{"optim.steps": 60})
    mine, theirs = Job([spec], p.store, p).start(), Job([spec], p.store, p).start()
    wait_until(lambda: mine.snapshot()[0].rows and theirs.snapshot()[0].rows)
    mine.stop()
    assert mine.wait(WAIT) and theirs.wait(WAIT)
    assert mine.snapshot()[0].state == "stopped"
    assert theirs.snapshot()[0].state == "ok" and len(theirs.snapshot()[0].as_run().history) == 61
    assert [spec.key()] == pool_trainers.CALLS


def test_a_job_waiting_in_the_queue_stops_without_training(pool):
    p = pool(workers=1)
    first = Job([tiny(seed=1, **{"optim.steps": 200})], p.store, p).start()
    wait_until(lambda: first.snapshot()[0].state == "running")
    second = Job([tiny(seed=2)], p.store, p).start()
    wait_until(lambda: second.snapshot()[0].queue_position == 1)
    second.stop()
    assert second.wait(WAIT) and second.snapshot()[0].state == "stopped"
    first.stop()
    assert first.wait(WAIT)
    assert tiny(seed=2).key() not in pool_trainers.CALLS


def test_job_stops_when_nobody_polls(pool):
    p = pool()
    job = Job([tiny(**{"optim.steps": 5000})], p.store, p, heartbeat_timeout_s=0.3).start()
    assert job.wait(WAIT)
    assert job.snapshot()[0].state == "stopped" and "stopped asking" in job.error


def test_a_run_over_the_memory_cap_is_refused_up_front_naming_the_cap(pool):
    p = pool()
    big = tiny(**{"model.width": 512, "data.n_train": 4000})
    job = Job([big, tiny(seed=4)], p.store, p, refuse=lambda s: refusal(s, 450.0, "hosted")).start()
    assert job.wait(WAIT)
    states = job.snapshot()
    assert states[0].state == "failed"
    assert "more than the hosted profile's cap of 450 MB per run" in states[0].message
    assert states[1].state == "ok"
    assert [tiny(seed=4).key()] == pool_trainers.CALLS


def test_a_new_learning_rate_mid_run_is_recorded_and_replays(pool):
    p = pool(trainer=None)  # the real trainer
    spec = tiny(seed=10, **{"optim.steps": 3000, "probes.sharpness_every": 0})
    job = Job([spec], p.store, p).start()
    wait_until(lambda: len(job.snapshot()[0].rows) > 5)
    job.set_lr(0.4)
    assert job.wait(WAIT)
    state = job.snapshot()[0]
    assert state.state == "ok"
    ((step, lr),) = state.run.spec.optim.lr_changes
    assert lr == 0.4 and 0 < step < 3000
    h = state.run.history
    assert set(h.loc[h["step"] < step, "lr"]) == {0.1} and set(h.loc[h["step"] >= step, "lr"]) == {0.4}
    assert p.store.has(state.run.spec.key()) and not p.store.has(spec.key())  # stored under the changed spec
    replay = train(state.run.spec)
    np.testing.assert_array_equal(replay.history["loss"].to_numpy(), h["loss"].to_numpy())


def test_pause_holds_the_run_until_resumed(pool):
    p = pool()
    job = Job([tiny(seed=11, **{"optim.steps": 400})], p.store, p).start()
    wait_until(lambda: job.snapshot()[0].rows)
    job.pause(True)
    wait_until(lambda: job.snapshot()[0].paused)
    held = job.snapshot()[0].step
    time.sleep(0.3)
    assert job.snapshot()[0].step <= held + 1 and "(paused)" in job.progress()[1]
    job.pause(False)
    assert job.wait(WAIT) and job.snapshot()[0].state == "ok"


def test_a_shared_run_cannot_be_steered(pool):
    p = pool()
    spec = tiny(seed=12, **{"optim.steps": 300})
    mine, theirs = Job([spec], p.store, p).start(), Job([spec], p.store, p).start()
    wait_until(lambda: all(j.snapshot()[0].state == "running" and j.snapshot()[0].rows for j in (mine, theirs)))
    with pytest.raises(ValueError, match="shared with 1 other visitor"):
        mine.set_lr(1.0)
    mine.stop()
    theirs.stop()
