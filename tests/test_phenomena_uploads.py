"""The user's own uploaded data in the phenomena: which can use it, clipped sizes, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from learnmech_core import phenomena
from learnmech_core.data import describe, register_array_dataset
from learnmech_core.models import build
from learnmech_core.phenomena.base import data_spec, minibatch
from learnmech_core.phenomena.runner import run_phenomenon
from learnmech_core.store import RunStore


def blobs(n: int = 120, d: int = 6, classes: int = 3, seed: int = 0) -> str:
    """A registered classification upload: `classes` separated Gaussian blobs in d dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = 3.0 * rng.standard_normal((classes, d))
    x = centres[y] + rng.standard_normal((n, d))
    return register_array_dataset(x, y, "classification", label="blobs")


def regression_upload(n: int = 80, d: int = 4) -> str:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, d))
    return register_array_dataset(x, x @ rng.standard_normal(d), "regression", label="linear")


def upload_phenomena():
    return [n for n in phenomena.names() if phenomena.get(n).upload_tasks]


def test_some_phenomena_accept_uploads_and_data_building_ones_do_not():
    names = upload_phenomena()
    assert {"edge_of_stability", "progressive_sharpening", "heavy_tailed_spectra", "catapult"} <= set(names)
    assert not {"grokking", "saxe_dynamics", "scaling_collapse"} & set(names)


@pytest.mark.parametrize("name", upload_phenomena())
def test_upload_specs_are_clipped_to_the_rows_and_build(name):
    ph = phenomena.get(name)
    data = blobs() if "classification" in ph.upload_tasks else regression_upload()
    rows = describe(data_spec(data, 1, 1)).n_available
    specs = ph.specs("tiny", ("mlp",), (data,))
    assert specs
    for spec in specs:
        assert spec.data.name == data
        assert spec.data.n_train + spec.data.n_test <= rows
        assert spec.data.n_test >= 1 and spec.data.n_train >= 1
        assert spec.optim.batch_size < spec.data.n_train  # a larger minibatch became full batch (0)
        build(spec.model, describe(spec.data))  # the model fits the data's shape


def test_data_spec_keeps_a_fifth_for_test_and_the_rest_for_training():
    data = blobs(n=50)
    assert (data_spec(data, 500, 100).n_train, data_spec(data, 500, 100).n_test) == (40, 10)
    assert (data_spec(data, 20, 5).n_train, data_spec(data, 20, 5).n_test) == (20, 5)  # fits already: unchanged
    assert data_spec(data, 20, 5, dim=8, n_classes=4).dim == data_spec(data, 20, 5).dim  # generator settings dropped
    assert data_spec("gaussian_mixture", 20, 5, dim=8).dim == 8
    assert minibatch(64, data_spec(data, 500, 100)) == 0 and minibatch(16, data_spec(data, 500, 100)) == 16


@pytest.mark.parametrize("name,dataset,archs,message", [
    ("grokking", "blobs", ("mlp",), "grokking cannot run on uploaded data"),
    ("edge_of_stability", "regression", ("mlp",),
     "needs classification data; the uploaded dataset linear is regression"),
    ("edge_of_stability", "blobs", ("cnn",), "architecture 'cnn' cannot take the vector inputs of uploaded data"),
    ("edge_of_stability", "missing", ("mlp",), "not loaded in this session"),
])
def test_bad_upload_requests_name_the_problem(name, dataset, archs, message):
    data = {"blobs": blobs, "regression": regression_upload, "missing": lambda: "upload:0123456789ab"}[dataset]()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        phenomena.get(name).specs("tiny", archs, (data,))


def test_edge_of_stability_runs_on_uploaded_data_and_judges_it(tmp_path):
    data = blobs(n=120, d=8, classes=3)
    result = run_phenomenon("edge_of_stability", "tiny", archs=("mlp",), datasets=(data,), store=RunStore(tmp_path))
    assert result.runs and all(r.spec.data.name == data for r in result.runs)
    assert all(r.spec.data.n_train == 64 for r in result.runs)  # tiny asks for 64 of the 96 available
    v = result.verdict
    assert {row["dataset"] for row in v.per_run} == {data}
    measured = [row["measured"] for row in v.per_run if row["measured"] is not None]
    assert measured and all(np.isfinite(measured))  # sharpness x eta/2 measured on the user's data


def test_uploads_are_shown_by_their_label_in_legends():
    from learnmech_core.data import display_name
    from learnmech_core.plots.runs import run_label

    data = blobs(n=40, seed=3)
    assert display_name(data) == f"blobs ({data[:13]})"
    assert display_name("upload:ffffffffffff") == "upload:ffffff"  # not loaded here: the short name
    assert display_name("digits") == "digits"
    spec = phenomena.get("edge_of_stability").specs("tiny", ("mlp",), (data,))[0]
    assert run_label(spec) == f"mlp · blobs ({data[:13]})"
    from learnmech_core.plots.phenomena_curvature import run_label as curvature_label
    from learnmech_core.plots.style import spec_hover

    assert f"blobs ({data[:13]})" in curvature_label(spec) and f"blobs ({data[:13]}) n=" in spec_hover(spec)
