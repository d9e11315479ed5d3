"""CLI hygiene: exit status of failed and diverged runs, --version, allowed values in every --help."""

import json
import sys

import pytest

import learnmech_core
from learnmech_core.cli import main
from learnmech_core.registry import ARCHITECTURES, DATASETS, DEVICES, OPTIMIZERS
from learnmech_core.store import RunStore

TINY = ["--width", "8", "--depth", "1", "--dataset", "moons", "--n-train", "32", "--n-test", "8", "--steps", "5"]


def test_failed_run_exits_1_and_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    def broken_loader(spec):
        raise RuntimeError("dataset went missing")

    monkeypatch.setattr(sys.modules["learnmech_core.train"], "load", broken_loader)  # the module, not the function
    assert main(["--store", str(tmp_path), "run", *TINY, "--json"]) == 1
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["status"] == "failed" and summary["message"] == "RuntimeError: dataset went missing"
    assert err.strip().splitlines()[-1] == "learnmech: error: the run failed: RuntimeError: dataset went missing"
    meta = json.loads((tmp_path / "runs" / summary["key"] / "meta.json").read_text())
    assert meta["traceback"].startswith("Traceback (most recent call last):")
    assert "in broken_loader" in meta["traceback"] and meta["traceback"].rstrip().endswith(
        "RuntimeError: dataset went missing")
    assert RunStore(tmp_path).get(summary["key"]).traceback == meta["traceback"]  # read back


def test_diverged_run_is_a_result_exit_0(tmp_path, capsys):
    argv = ["--store", str(tmp_path), "run", *TINY, "--lr", "500", "--steps", "40", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "diverged"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"learnmech {learnmech_core.__version__}"


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_every_help_lists_allowed_values(capsys):
    from learnmech_core import phenomena
    from learnmech_core.sweep import AXIS_ALIASES, BACKENDS

    run_help = _help(["run"], capsys)
    for names in (ARCHITECTURES, DATASETS, OPTIMIZERS, DEVICES):
        assert f"one of {', '.join(names)}" in run_help
    assert "model.width: an integer (default 128)" in run_help and "optim.lr: a number (default 0.05)" in run_help
    assert "probes.topk_every" in run_help  # --set names every field
    verify_help = _help(["verify"], capsys)
    assert f"one of {', '.join(phenomena.names())}" in verify_help and "{tiny,quick,full}" in verify_help
    assert "{" + ",".join(DEVICES) + "}" in verify_help
    sweep_help = _help(["sweep"], capsys)
    assert "{" + ",".join(BACKENDS) + "}" in sweep_help and ", ".join(AXIS_ALIASES) in sweep_help
    assert ", ".join(phenomena.names()) in _help(["gallery"], capsys)
    top = _help([], capsys)
    assert "--version" in top and "migrate" in top


def test_bad_backend_is_a_usage_error(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(learnmech_core.RunSpec().to_json())
    assert main(["sweep", "--base", str(spec), "--axis", "lr=0.1", "--backend", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("learnmech: error: argument --backend: invalid choice: 'gpu'") and "serial" in err
