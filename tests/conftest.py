"""Shared fixtures: every test gets its own empty run store and the local profile."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNMECH_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("LEARNMECH_PROFILE", "local")
    monkeypatch.delenv("LEARNMECH_DATA_DIR", raising=False)
    yield
