"""Command line: run/list/show/export/import round trip, one-line errors with exit status 2."""

import json

from learnmech_core.cli import main

TINY = ["--width", "8", "--depth", "1", "--n-train", "32", "--n-test", "8", "--steps", "5"]


def test_run_list_show_export_import(tmp_path, capsys):
    store = str(tmp_path / "s")
    assert main(["--store", store, "run", *TINY, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "ok" and summary["steps"] == 5 and 0 < summary["final_loss"] < 10
    key = summary["key"]
    assert main(["--store", store, "list", "--json"]) == 0
    assert [r["key"] for r in json.loads(capsys.readouterr().out)] == [key]
    assert main(["--store", store, "show", key]) == 0
    assert '"width": 8' in capsys.readouterr().out
    out = tmp_path / "run.zip"
    assert main(["--store", store, "export", key, "--out", str(out)]) == 0 and out.exists()
    capsys.readouterr()
    assert main(["--store", str(tmp_path / "other"), "import", str(out)]) == 0
    assert capsys.readouterr().out.strip() == key


def test_spec_file_and_set_override(tmp_path, capsys):
    from learnmech_core import RunSpec

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(RunSpec().replace(**{"model.width": 8, "data.n_train": 32, "data.n_test": 8,
                                              "optim.steps": 3}).to_json())
    assert main(["--store", str(tmp_path), "run", "--spec", str(spec_file), "--set", "optim.lr=0.2", "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    from learnmech_core.store import RunStore

    spec = RunStore(tmp_path).spec(key)
    assert spec.optim.lr == 0.2 and spec.model.width == 8 and spec.optim.steps == 3


def test_bad_flags_give_one_line_and_status_2(capsys):
    for argv, message in [
        (["run", "--width", "0"], "model.width must be between 1 and 4096 (got 0)"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "--set", "model.colour=red"], "unknown spec field 'model.colour'"),
        (["run", "--arch", "cnn", "--dataset", "moons"], "model.arch 'cnn' needs image datasets"),
        (["show", "0123abcd"], "no stored run with key 0123abcd"),
        (["verify", "no_such_thing"], "unknown phenomenon 'no_such_thing'"),
        ([], "the following arguments are required: command"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("learnmech: error:") and message in err, err


def test_datasets_and_models_listings(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "modular_arithmetic" in out and "cifar10" in out
    assert main(["models"]) == 0
    assert "transformer" in capsys.readouterr().out


def test_gallery_build_times_trained_runs_keeps_time_when_reusing_and_strips_weights(tmp_path):
    from learnmech_core import phenomena
    from learnmech_core.cli_gallery import build_gallery, phenomena_markdown
    from learnmech_core.store import RunStore
    from learnmech_core.train import get_or_train

    first = build_gallery(tmp_path, ["saxe_dynamics"], size="tiny", log=lambda s: None, seeds=(0,))["saxe_dynamics"]
    assert first["seconds"] > 0 and first["threads"] >= 1
    store = RunStore(tmp_path)
    keys = [s.key() for s in phenomena.get("saxe_dynamics").specs("tiny")]
    assert all(store.has(k) and store.get(k).weights is None for k in keys)  # its verdict needs no weights
    created = {k: store.list().set_index("key").loc[k, "created"] for k in keys}
    (tmp_path / "verdicts.json").write_text(json.dumps({"saxe_dynamics": first | {"seconds": 123.0}}))
    again = build_gallery(tmp_path, ["saxe_dynamics"], size="tiny", log=lambda s: None, seeds=(0,))["saxe_dynamics"]
    assert again["seconds"] == 123.0 and again["passed"] == first["passed"]  # reused runs: the recorded time stays
    fresh = build_gallery(tmp_path, ["saxe_dynamics"], size="tiny", log=lambda s: None, fresh=True,
                          seeds=(0,))["saxe_dynamics"]
    assert fresh["seconds"] != 123.0
    assert all(RunStore(tmp_path).list().set_index("key").loc[k, "created"] > created[k] for k in keys)  # retrained
    row = next(line for line in phenomena_markdown({"saxe_dynamics": fresh}).splitlines()
               if line.startswith("| [saxe_dynamics]"))
    assert row.endswith(f"| {fresh['seconds_per_seed']} | {fresh['threads']} |")
    assert phenomena.get("representation_convergence").needs_weights  # its verdict rebuilds the trained models
    # a run no verdict reads (an earlier grid's) is removed by the next build
    stray = phenomena.get("saxe_dynamics").specs("tiny")[0].replace(seed=99)
    get_or_train(RunStore(tmp_path), stray, tags=["phenomenon:saxe_dynamics"])
    own = stray.replace(seed=98)  # a run that is not a phenomenon's stays
    get_or_train(RunStore(tmp_path), own)
    build_gallery(tmp_path, ["saxe_dynamics"], size="tiny", log=lambda s: None, seeds=(0,))
    assert not RunStore(tmp_path).has(stray.key()) and all(RunStore(tmp_path).has(k) for k in keys)
    assert RunStore(tmp_path).has(own.key())


def test_phenomena_markdown_says_on_how_many_seeds_each_clause_held():
    from learnmech_core.cli_gallery import phenomena_markdown
    from learnmech_core.store import gallery_root

    entry = json.loads((gallery_root() / "verdicts.json").read_text())["catapult"]
    entry["clauses"] = [c | {"passed": True} for c in entry["clauses"]][:4]
    entry["passed"] = False
    entry["seeds"] = [{"seed": 0, "passed": True, "measured": 1.0, "clauses": [True, True, True, True]},
                      {"seed": 1, "passed": False, "measured": 1.0, "clauses": [True, True, True, False]},
                      {"seed": 2, "passed": False, "measured": 1.0, "clauses": [True, True, False, True]}]
    section = phenomena_markdown({"catapult": entry}).split("## catapult")[1].split("\n## ")[0]
    clauses = [line for line in section.splitlines() if line.startswith("  - ")][:4]  # then "What we tried"
    assert [line.count("holds on 3 of 3 seeds") for line in clauses] == [1, 1, 0, 0]
    assert [line.count("holds on 2 of 3 seeds") for line in clauses] == [0, 0, 1, 1]
    assert "- Verdict at quick size: **fails**" in section
