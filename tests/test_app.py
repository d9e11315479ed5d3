"""The app under Streamlit's AppTest: every page renders, a tiny live run, bad inputs, links restore views.

The job machinery (queue, pool, workers) has its own tests: tests/test_jobs.py and tests/test_pool.py.
A fake phenomenon (`tiny_test`) stands in for the catalogue so these tests do not depend on which
phenomena modules exist and how long their runs take.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from learnmech_core import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec, phenomena, train
from learnmech_core.phenomena.base import Clause, Phenomenon, Verdict, at_most, data_spec, run_row
from learnmech_core.store import RunStore
from learnmech_core.train import Run

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = ["pages/home.py", "pages/phenomena.py", "pages/explore.py", "pages/your_data.py", "pages/spectra.py",
         "pages/compare.py", "pages/runs.py"]
TIMEOUT = 60


def tiny_spec(**changes) -> RunSpec:
    spec = RunSpec(model=ModelSpec(width=8, depth=1), data=DataSpec(name="moons", n_train=64, n_test=16),
                   optim=OptimSpec(steps=4, lr=0.1), probes=ProbeSpec(sharpness_every=2))
    return spec.replace(**changes) if changes else spec


class TinyPhenomenon(Phenomenon):
    name = "tiny_test"
    title = "Does the training loss fall?"
    direction = "universal"
    sources = ("A test, 2024",)
    prediction = "The final loss is below the initial loss: ratio < 1."
    measures = "The training loss at the first and last step."
    archs = ("mlp",)
    datasets = ("moons",)
    allowed_archs = ("mlp", "deep_linear")
    allowed_datasets = ("moons", "circles")
    upload_tasks = ("classification",)
    normalisation = "loss / initial loss"

    def _grid(self, size, archs, datasets):
        sized = {d: data_spec(d, 64, 16) for d in datasets}
        return [tiny_spec(**{"model.arch": a, "data.name": d, "data.n_train": sized[d].n_train,
                             "data.n_test": sized[d].n_test}) for a in archs for d in datasets]

    def verdict(self, runs):
        rows = []
        for run in runs:
            ratio = run.final("loss") / float(run.history["loss"].iloc[0])
            rows.append(run_row(run, ratio < 1.0, ratio, at_most(1.0)))
        worst = max(r["measured"] for r in rows)
        return Verdict.of([Clause.judge("the loss falls", "largest final / initial loss", at_most(1.0), worst)],
                          "final / initial loss", per_run=rows)

    def figures(self, runs, verdict=None, normalised=True, presentation=False):
        from learnmech_core.plots import runs as prun

        return [prun.curves_figure(runs, "loss", references=[(0.5, "predicted")], presentation=presentation)]


TINY = TinyPhenomenon()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As the app runs (resources.configure_process, skipped under AppTest): tiny models on one thread.

    Restored afterwards, so other test modules keep their own setting.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def no_component_scan():
    """Every new AppTest rescans all installed packages for Streamlit components (seconds each); the app
    uses none, so the scan is skipped here."""
    import streamlit.components.v2.manifest_scanner as scanner

    original = scanner.scan_component_manifests
    scanner.scan_component_manifests = lambda *a, **k: []
    yield
    scanner.scan_component_manifests = original


@pytest.fixture(autouse=True)
def app_env(monkeypatch, tmp_path):
    """Fresh caches, the fake phenomenon, and an empty gallery folder per test."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setattr(phenomena, "names", lambda: ["tiny_test"])

    def get(name):
        if name != "tiny_test":
            raise ValueError(f"unknown phenomenon {name!r}")
        return TINY

    monkeypatch.setattr(phenomena, "get", get)
    gallery = tmp_path / "gallery"
    import learnmech_app.cards as cards
    import learnmech_app.resources as res

    monkeypatch.setattr(res, "gallery_root", lambda: gallery)
    monkeypatch.setattr(cards, "gallery_root", lambda: gallery)
    yield gallery


def app(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if query:
        at.query_params.update(query)
    if page:
        at.switch_page(page)
        at.run()
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not any("Unexpected problem" in e for e in errors(at)), errors(at)


def wait_for_job(at: AppTest, name: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = at.session_state.get(f"job:{name}", None)
        if job is not None and job.done:
            break
        time.sleep(0.3)
    at.run()
    job = at.session_state[f"job:{name}"]
    assert job.done, "the job did not finish in time"


def store_runs(*specs) -> list[Run]:
    store = RunStore()
    out = []
    for spec in specs:
        run = train(spec)
        store.put(run)
        out.append(run)
    return out


# ---------------------------------------------------------------------------------------------- pages


def test_every_page_renders_with_title_and_explanation():
    at = app()
    # (AppTest 1.67 drops the sidebar from its tree after switch_page, so check it on the first page)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "Device" in sidebar and "Store" in sidebar and "profile" in sidebar
    for page in PAGES:
        at.switch_page(page).run()
        assert_clean(at)
        assert len(at.title) == 1, page
        assert at.markdown and len(at.markdown[0].value) > 100, page  # the one-paragraph explanation


def test_every_page_renders_with_stored_runs_and_hosted_profile(monkeypatch):
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    store_runs(tiny_spec(**{"probes.esd_every": 2, "probes.topk_every": 2}))
    at = app()
    assert "hosted" in " ".join(c.value for c in at.sidebar.caption)
    for page in PAGES:
        at.switch_page(page).run()
        assert_clean(at)


def test_explore_tiny_run_draws_charts_and_stores_the_run():
    at = app("pages/explore.py")
    for key, value in {"model.width": 8, "model.depth": 1, "data.n_train": 64, "data.n_test": 32,
                       "optim.steps": 4, "every": 2}.items():
        at.number_input(key=key).set_value(value)
    at.run()
    assert not errors(at)
    at.button(key="run").click().run()
    assert_clean(at)
    job = at.session_state["job:explore"]
    wait_for_job(at, "explore")
    assert_clean(at)
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert "Is the training loss falling?" in titles and "Does sharpness stop at 2/η?" in titles
    loss = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Is the training loss falling?")
    assert len(loss["data"][0]["x"]) >= 2
    key = job.specs[0].key()
    assert RunStore().has(key)
    assert [s.state for s in job.snapshot()] == ["ok"]


def test_explore_stop_button_stops_and_keeps_the_curve(monkeypatch):
    at = app("pages/explore.py", {"model.width": "8", "data.n_train": "64", "data.n_test": "16",
                                  "optim.steps": "5000", "measure": ""})
    at.button(key="run").click().run()
    deadline = time.time() + 60
    while time.time() < deadline and not at.session_state["job:explore"].snapshot()[0].rows:
        time.sleep(0.2)
    at.run()
    at.button(key="explore_stop").click().run()
    wait_for_job(at, "explore")
    state = at.session_state["job:explore"].snapshot()[0]
    assert state.state == "stopped" and len(state.rows) >= 1
    assert not RunStore().has(state.key)
    assert charts(at)  # the partial curve is still drawn


def test_explore_several_architectures_run_as_a_set_with_consistent_colours():
    at = app("pages/explore.py", {"model.arch": ["mlp", "deep_linear"], "model.width": "8", "model.depth": "1",
                                  "data.name": "moons", "data.n_train": "64", "data.n_test": "16",
                                  "optim.steps": "3", "measure": ""})
    assert at.caption and any("2 runs" in c.value for c in at.caption)
    at.button(key="run").click().run()
    wait_for_job(at, "explore")
    loss = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Is the training loss falling?")
    colours = {t["name"].split(" ")[0]: t["line"]["color"] for t in loss["data"] if t.get("mode") == "lines"}
    from learnmech_core.plots.style import arch_color

    assert colours == {"mlp": arch_color("mlp"), "deep_linear": arch_color("deep_linear")}


@pytest.mark.parametrize("key,value,message", [
    ("model.width", 0, "model.width must be between 1"),
    ("optim.lr", -0.1, "optim.lr must be greater than 0"),
    ("optim.steps", 0, "optim.steps must be between 1"),
])
def test_explore_bad_input_shows_an_error_not_an_exception(key, value, message):
    at = app("pages/explore.py")
    at.number_input(key=key).set_value(value).run()
    assert_clean(at)
    assert any(message in e for e in errors(at)), errors(at)
    assert at.button(key="run").disabled


def test_explore_link_with_an_unknown_upload_says_so():
    at = app("pages/explore.py", {"data.name": "upload:0123456789ab"})
    assert_clean(at)
    assert any("not available here: upload:0123456789ab" in w.value for w in at.warning)
    assert at.multiselect(key="data.name").value == ["digits"]


def test_explore_incompatible_combination_is_skipped_with_a_warning():
    at = app("pages/explore.py", {"model.arch": ["mlp", "cnn"], "data.name": "moons"})
    assert_clean(at)
    assert any("cnn × moons" in w.value for w in at.warning)
    assert not at.button(key="run").disabled


def test_explore_dense_head_goes_to_cnn_runs_only_and_into_the_link():
    at = app("pages/explore.py", {"model.arch": ["mlp", "cnn"], "data.name": "digits", "model.head_width": "32",
                                  "model.width": "8", "optim.steps": "3", "measure": ""})
    assert_clean(at)
    assert at.number_input(key="model.head_width").value == 32
    at.button(key="run").click().run()
    wait_for_job(at, "explore")
    specs = {s.model.arch: s for s in at.session_state["job:explore"].specs}
    assert specs["cnn"].model.head_width == 32 and specs["mlp"].model.head_width == 0
    assert RunStore().get(specs["cnn"].key()).spec.model.head_width == 32


def test_explore_shows_stored_runs_at_once_from_a_link():
    from learnmech_app.spec_form import explore_params

    (run,) = store_runs(tiny_spec())
    at = app("pages/explore.py", explore_params(run.spec))
    assert_clean(at)
    assert any("already stored" in s.value for s in at.success)
    assert any(c["layout"]["title"]["text"] == "Does sharpness stop at 2/η?" for c in charts(at))


def test_query_params_restore_the_explore_view():
    at = app("pages/explore.py", {"model.width": "16", "optim.lr": "0.2", "model.arch": ["mlp", "resnet"],
                                  "measure": ["sharpness", "esd"], "x": "lr_time", "optim.eval_every": "5"})
    assert_clean(at)
    assert at.number_input(key="model.width").value == 16
    assert at.number_input(key="optim.lr").value == pytest.approx(0.2)
    assert at.multiselect(key="model.arch").value == ["mlp", "resnet"]
    assert at.multiselect(key="measure").value == ["sharpness", "esd"]
    assert any("optim.eval_every=5" in c.value for c in at.caption)  # a field without a widget is kept


def test_query_params_restore_compare_spectra_runs_and_phenomena_views():
    a, b = store_runs(tiny_spec(), tiny_spec(seed=1))
    at = app("pages/compare.py", {"runs": [a.key], "metric": "sharpness", "x": "lr_time", "band": "minmax"})
    assert_clean(at)
    assert at.multiselect(key="runs").value == [a.key]
    assert at.selectbox(key="metric").value == "sharpness"
    assert at.selectbox(key="band").value == "minmax"
    at = app("pages/spectra.py", {"run": b.key})
    assert_clean(at)
    assert at.selectbox(key="run").value == b.key
    at = app("pages/runs.py", {"run": b.key})
    assert_clean(at)
    assert at.selectbox(key="run").value == b.key
    assert {d.label for d in at.get("download_button")} >= {"History (Parquet)", "History (CSV)", "Settings (JSON)"}
    at = app("pages/phenomena.py", {"phenomenon": "tiny_test", "size": "tiny", "archs": ["deep_linear"]})
    assert_clean(at)
    assert at.multiselect(key="archs").value == ["deep_linear"]


def test_compare_groups_seeds_into_a_band_with_a_collapse_score():
    store_runs(tiny_spec(), tiny_spec(seed=1), tiny_spec(**{"model.arch": "deep_linear"}))
    at = app("pages/compare.py")
    assert_clean(at)
    fig = charts(at)[0]
    assert any(t.get("fill") == "tonexty" for t in fig["data"])  # the two seeds of mlp make a band
    assert any(m.label == "Spread" for m in at.metric)
    at.selectbox(key="norm").set_value("loss_initial").run()
    assert_clean(at)
    assert any(m.label == "Collapse score" for m in at.metric)
    assert "loss / initial loss" in charts(at)[0]["layout"]["yaxis"]["title"]["text"]


def test_spectra_page_draws_weight_spectra_and_a_landscape():
    (run,) = store_runs(tiny_spec(**{"probes.esd_every": 2, "probes.topk_every": 2, "model.width": 16}))
    at = app("pages/spectra.py", {"run": run.key, "tab": "Weights"})
    assert_clean(at)
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert any("heavy-tailed" in t for t in titles), titles
    at.query_params.clear()
    at = app("pages/spectra.py", {"run": run.key, "tab": "Landscape", "points": "5", "dims": "2"})
    assert_clean(at)
    assert any(c["data"] and c["data"][0]["type"] == "contour" for c in charts(at))


def test_phenomenon_runs_live_then_shows_verdict_and_table():
    at = app("pages/phenomena.py", {"phenomenon": "tiny_test", "seeds": ["0", "1"]})
    assert_clean(at)
    assert any("Not in the gallery" in i.value for i in at.info)
    assert any("ratio < 1" in m.value for m in at.markdown)  # the prediction
    at.button(key="run").click().run()
    wait_for_job(at, "phenomena")
    assert_clean(at)
    assert any("holds" in m.value or "fails" in m.value for m in at.markdown)
    assert any("largest final / initial loss" in m.value and "(predicted: \u2264 1)" in m.value
               for m in at.markdown)  # the clause, read as its criterion reads
    seeds = at.dataframe[0].value  # one row per seed
    assert list(seeds["seed"]) == [0, 1] and set(seeds["verdict"]) <= {"holds", "fails"}
    clause = next(m.value for m in at.markdown if m.value.startswith("- **") and "largest final" in m.value)
    held = sum(seeds["verdict"] == "holds")  # one clause: it held on as many seeds as the whole claim did
    assert f" on {held} of 2 seeds" in clause
    table = at.dataframe[1].value  # one row per run, each with its own criterion
    assert sorted(table["seed"]) == [0, 1] and set(table["criterion"]) == {"\u2264 1"}
    assert {"measured", "criterion", "verdict"} <= set(table) and "expected" not in table
    assert len(RunStore().list()) == 2 and "phenomenon:tiny_test" in RunStore().list()["tags"].iloc[0]


SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="290" height="190"><text x="9" y="20">tiny</text></svg>'


def tiny_gallery(folder: Path, card_keys=None) -> list[Run]:
    """A gallery with the fake phenomenon's runs, its recorded verdict and (unless None) a card image."""
    gallery = RunStore(folder)
    runs = [train(spec) for spec in TINY.specs("quick")]
    for run in runs:
        gallery.put(run)
    verdict = TINY.verdict(runs)  # recorded as `gallery build` records it (verify JSON)
    entry = verdict.to_dict() | {"runs": [{"key": r.spec.key()} for r in runs], "summary": verdict.summary()}
    (folder / "verdicts.json").write_text(json.dumps({"tiny_test": entry}))
    if card_keys is not None:
        (folder / "cards").mkdir()
        (folder / "cards" / "tiny_test.svg").write_text(SVG)
        keys = [r.spec.key() for r in runs] if card_keys == "same" else card_keys
        (folder / "cards" / "index.json").write_text(json.dumps({"tiny_test": {"runs": keys}}))
    return runs


def card_images(at: AppTest) -> list[str]:
    """The data URIs of the card figures (an <img> in st.html each)."""
    return [u for el in at.html for u in re.findall(r'<img class="card-figure" src="([^"]+)"', el.value)]


def test_home_shows_card_image_and_recorded_verdict_at_once(app_env):
    import base64

    runs = tiny_gallery(app_env, card_keys="same")
    at = app()
    assert_clean(at)
    assert [base64.b64decode(u.split(",", 1)[1]).decode() for u in card_images(at)] == [SVG]  # no polling, no drawing
    expected = TINY.verdict(runs).summary()
    assert any(expected in m.value for m in at.markdown)  # the recorded verdict line, as the phenomenon page words it
    assert not RunStore().list().shape[0]  # nothing was trained into the user's store
    assert [p for p in at.get("page_link")]


def test_home_says_how_to_redraw_a_missing_or_stale_card_image(app_env):
    tiny_gallery(app_env, card_keys=["0123456789abcdef"])  # drawn from other runs than the verdict's
    at = app()
    assert_clean(at)
    assert not card_images(at)
    assert any("older than the gallery's runs" in c.value and "gallery thumbnails" in c.value for c in at.caption)
    (app_env / "cards" / "index.json").unlink()
    at = app()
    assert not card_images(at) and any("No card image yet" in c.value for c in at.caption)
    assert any("holds" in m.value or "fails" in m.value for m in at.markdown)  # the verdict still shows


def test_home_lists_the_gallery_from_its_card_index_without_importing_phenomena(app_env, monkeypatch):
    tiny_gallery(app_env, card_keys="same")
    index = json.loads((app_env / "cards" / "index.json").read_text())
    index["tiny_test"] |= {"title": "Does the indexed title show?", "direction": "laws"}
    (app_env / "cards" / "index.json").write_text(json.dumps(index))
    monkeypatch.setattr(phenomena, "names", lambda: pytest.fail("the home page imported the phenomena"))
    at = app()
    assert_clean(at)
    assert any("Does the indexed title show?" in m.value for m in at.markdown) and card_images(at)


def test_shipped_card_index_names_every_phenomenon_with_its_current_title():
    """The shipped gallery's card index is what Home lists: it must not lag behind the registry."""
    from learnmech_core.store import gallery_root

    path = gallery_root() / "cards" / "index.json"
    if not path.exists():
        pytest.skip("no card images in the gallery")
    index = json.loads(path.read_text())
    real = importlib.import_module("learnmech_core.phenomena")
    for name in json.loads((gallery_root() / "verdicts.json").read_text()):
        ph = real._load(name)
        assert (index[name]["title"], index[name]["direction"]) == (ph.title, ph.direction), name


def test_cards_find_the_gallery_and_the_directions_as_the_core_does(monkeypatch, tmp_path):
    """cards.py locates the gallery and names the research directions without importing learnmech_core (torch):
    both must agree with the core's own."""
    import learnmech_app.cards as cards
    from learnmech_core import store
    from learnmech_core.phenomena.base import DIRECTIONS

    real = importlib.reload(cards)  # the module itself, not the fixture's stand-in
    monkeypatch.delenv("LEARNMECH_GALLERY", raising=False)
    assert real.gallery_root() == store.gallery_root() and real.gallery_root().is_dir()
    monkeypatch.setenv("LEARNMECH_GALLERY", str(tmp_path))
    assert real.gallery_root() == store.gallery_root() == tmp_path
    assert list(real.DIRECTIONS) == list(DIRECTIONS)  # same keys, same order
    assert {k: title for k, (title, _) in real.DIRECTIONS.items()} == DIRECTIONS


HEAVY = ("torch", "pandas", "pyarrow", "numpy", "scipy", "learnmech_core", "learnmech_app.pool")


def test_home_page_is_drawn_before_anything_heavy_is_imported():
    """A fresh server draws the home page before it loads torch: app.py's imports and the home page itself, with
    the shipped gallery, import none of torch, pandas, pyarrow, numpy or learnmech_core before the sidebar is
    drawn (which needs them). Run in a fresh interpreter (this one has them all), the sidebar replaced by a probe."""
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "import learnmech_app.sidebar as sidebar\n"
        "seen = []\n"
        f"sidebar.render = lambda: seen.append([m for m in {HEAVY!r} if m in sys.modules])\n"
        "at = AppTest.from_file('app.py', default_timeout=60)\n"
        "at.run()\n"
        "figures = sum(el.value.count('<img class=\"card-figure\"') for el in at.html)\n"
        "print(json.dumps([figures, len(at.exception), seen]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LEARNMECH_GALLERY"} | {"PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    figures, errors, seen = json.loads(out.stdout.strip().splitlines()[-1])
    shipped = json.loads((ROOT / "learnmech_core" / "gallery" / "cards" / "index.json").read_text())
    assert (figures, errors, seen) == (len(shipped), 0, [[]])


def test_home_without_gallery_says_so():
    at = app()
    assert_clean(at)
    assert any("Not in the gallery yet" in c.value for c in at.caption)


def test_class_mode_hides_the_result_until_the_guesses_are_revealed(app_env, monkeypatch):
    from learnmech_app import class_mode

    monkeypatch.setitem(class_mode.QUESTIONS, "tiny_test", class_mode.Question(
        "By what factor does the loss fall, $L_T / L_0$?", "final / initial loss", 0.0, 2.0, 0.1, 1.0))
    runs = tiny_gallery(app_env)
    measured = TINY.verdict(runs).measured
    at = app("pages/phenomena.py", {"phenomenon": "tiny_test", "class": "true", "seeds": "0"})
    assert_clean(at)
    assert any("$L_T / L_0$" in m.value for m in at.markdown)  # the question, with its math for st.markdown
    assert not at.dataframe and not charts(at)  # nothing measured yet
    assert at.button(key="class_reveal_tiny_test").disabled  # a guess first
    at.slider(key="class_slider_tiny_test").set_value(0.3).run()
    at.button(key="class_add_tiny_test").click().run()
    at.button(key="class_reveal_tiny_test").click().run()
    assert_clean(at)
    assert any(f"Measured: **{measured:.3g}** · closest guess: **0.3**" in m.value for m in at.markdown)
    guess_chart = charts(at)[0]
    points = {t["name"]: t["x"] for t in guess_chart["data"]}
    assert points["guesses"] == [0.3] and points["measured"] == [pytest.approx(measured)]
    assert at.dataframe  # the verdict table follows the reveal
    at.button(key="class_again_tiny_test").click().run()
    assert not at.dataframe and at.button(key="class_reveal_tiny_test").disabled


def test_empty_pages_point_to_the_click_that_fills_them():
    for page in ("pages/spectra.py", "pages/compare.py", "pages/runs.py"):  # no gallery, nothing stored
        at = app(page)
        assert_clean(at)
        assert at.info, page
        assert any(link.proto.page == "explore" for link in at.get("page_link")), page
    at = app("pages/spectra.py")
    link = next(link for link in at.get("page_link") if link.proto.page == "explore")
    assert "measure=topk" in link.proto.query_string and "measure=density" in link.proto.query_string
    at = app("pages/your_data.py")
    at.button(key="use_example").click().run()
    assert_clean(at)
    assert any("example: two moons" in m.value and "200 rows" in m.value for m in at.markdown)


# ---------------------------------------------------------------------------------------------- uploads


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_your_data_csv_becomes_a_dataset_usable_in_explore():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "label": rng.integers(0, 2, 40)})
    at = app("pages/your_data.py")
    at.file_uploader(key="upload").upload("points.csv", csv_bytes(frame), "text/csv")
    at.run()
    assert_clean(at)
    assert not errors(at)
    at.button(key="use").click().run()
    uploads = at.session_state["uploads"]
    (name,) = list(uploads)
    assert name.startswith("upload:") and uploads[name]["classes"] == 2
    at = at.switch_page("pages/explore.py")
    at.query_params.update({"data.name": name, "data.n_train": "30", "data.n_test": "10", "model.width": "8",
                            "optim.steps": "3", "measure": ""})
    at.run()
    assert_clean(at)
    assert at.multiselect(key="data.name").value == [name]
    assert not errors(at)


def test_uploaded_data_runs_in_a_phenomenon():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "label": np.arange(50) % 2})
    at = app("pages/your_data.py")
    at.file_uploader(key="upload").upload("points.csv", csv_bytes(frame), "text/csv")
    at.run()
    at.button(key="use").click().run()
    (name,) = list(at.session_state["uploads"])
    link = [p for p in at.get("page_link") if "phenomenon" in p.proto.page or "Test a phenomenon" in p.proto.label]
    assert link  # "Test a phenomenon on it"
    at = at.switch_page("pages/phenomena.py")
    at.query_params.update({"phenomenon": "tiny_test", "datasets": name, "size": "tiny", "seeds": "0"})
    at.run()
    assert_clean(at)
    assert "your data: points.csv (50×2)" in at.multiselect(key="datasets").options  # offered, with its label
    assert at.multiselect(key="datasets").value == [name]
    at.button(key="run").click().run()
    wait_for_job(at, "phenomena")
    assert_clean(at)
    table = at.dataframe[0].value
    (key,) = list(RunStore().list()["key"])
    spec = RunStore().get(key).spec
    assert (spec.data.name, spec.data.n_train, spec.data.n_test) == (name, 40, 10)  # 50 rows: 40 train, 10 test
    assert len(table) == 1  # the one run of seed 0


@pytest.mark.parametrize("filename,payload,message", [
    ("bad.npz", b"this is not a numpy file", "not a valid .npz"),
    ("bad.csv", b"a,label\nx,1\ny,0\nz,1\nw,0\n", "not numeric: a"),
    ("nan.csv", b"a,b,label\n1,2,0\n,3,1\n4,5,0\n6,7,1\n", "missing or infinite values: a"),
    ("one.csv", b"a,label\n1,0\n2,0\n3,0\n4,0\n", "at least two classes"),
    ("empty.csv", b"", "is empty"),
])
def test_your_data_bad_upload_names_the_problem(filename, payload, message):
    at = app("pages/your_data.py")
    at.file_uploader(key="upload").upload(filename, payload, "application/octet-stream")
    at.run()
    assert_clean(at)
    assert any(message in e for e in errors(at)), errors(at)
    assert "uploads" not in at.session_state or not at.session_state["uploads"]


def test_hosted_profile_caps_upload_size(monkeypatch):
    monkeypatch.setenv("LEARNMECH_PROFILE", "hosted")
    at = app("pages/your_data.py")
    big = b"a,label\n" + b"1.0,0\n" * 1_000_000  # 6 MB
    at.file_uploader(key="upload").upload("big.csv", big, "text/csv")
    at.run()
    assert_clean(at)
    assert any("accepts files up to 5 MB" in e for e in errors(at)), errors(at)


def test_npz_upload_works():
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    np.savez(buf, X=rng.normal(size=(30, 3)), y=rng.normal(size=30))
    at = app("pages/your_data.py")
    at.file_uploader(key="upload").upload("reg.npz", buf.getvalue(), "application/octet-stream")
    at.run()
    assert_clean(at)
    assert any("regression" in s.value for s in at.success)


# ---------------------------------------------------------------------------------------------- runs page


def test_runs_page_imports_a_good_file_rejects_a_corrupt_one_and_deletes():
    (run,) = store_runs(tiny_spec())
    exported = RunStore().export_bytes(run.key)
    RunStore().delete(run.key)
    at = app("pages/runs.py")
    at.file_uploader(key="import").upload("corrupt.zip", b"PK not really a zip", "application/zip")
    at.run()
    assert_clean(at)
    assert any("not a zip archive" in e for e in errors(at)), errors(at)
    assert RunStore().list().empty
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("spec.json", "{}")
        zf.writestr("evil.py", "print(1)")
    at.file_uploader(key="import").clear()
    at.file_uploader(key="import").upload("evil.zip", bad.getvalue(), "application/zip")
    at.run()
    assert any("unexpected file" in e for e in errors(at)), errors(at)
    assert RunStore().list().empty
    at.file_uploader(key="import").clear()
    at.file_uploader(key="import").upload("good.zip", exported, "application/zip")
    at.run()
    assert_clean(at)
    assert RunStore().has(run.key)
    at.query_params.update({"run": run.key})
    at = app("pages/runs.py", {"run": run.key})
    at.button(key="delete").click().run()
    assert_clean(at)
    assert not RunStore().has(run.key)
