"""Shared fixtures: every test gets its own empty run store and the local profile.

Run from the repository root with `python -m pytest` (as scripts/test.sh does), which puts the root
on sys.path, or with learnmech installed (`pip install -e ".[test]"`).
"""

import os

import pytest
import torch

# Tests train tiny models: one intra-op thread is faster for them and immune to OpenMP spin-waiting
# when the machine is shared (measured here: a 400-step width-8 run took 36 s on 2 busy threads, 1.8 s on 1).
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocesses tests start


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNMECH_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("LEARNMECH_PROFILE", "local")
    monkeypatch.delenv("LEARNMECH_DATA_DIR", raising=False)
    monkeypatch.delenv("LEARNMECH_GALLERY", raising=False)
    yield
