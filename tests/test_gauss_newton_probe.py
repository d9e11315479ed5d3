"""The Gauss-Newton split probe (probes.gauss_newton_k): its numbers are `curvature_split` of the final weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnmech_core import train
from learnmech_core.config import DataSpec, ModelSpec, OptimSpec, ProbeSpec, RunSpec
from learnmech_core.curvature import full_hessian
from learnmech_core.ensemble import unsupported_reason
from learnmech_core.gauss_newton import curvature_split, full_gauss_newton
from learnmech_core.train import build_model, device_split, loss_function

KINDS = ("gn_hessian", "gn_gauss_newton", "gn_residual", "gn_share")


def tiny_spec(k: int = 4, **probes) -> RunSpec:
    return RunSpec(model=ModelSpec(arch="mlp", width=8, depth=1, activation="tanh"),
                   data=DataSpec(name="gaussian_mixture", n_train=32, n_test=8, n_classes=3, dim=4),
                   optim=OptimSpec(name="gd", lr=0.2, steps=20, loss="ce", eval_every=0),
                   probes=ProbeSpec(log_every=5, gauss_newton_k=k, **probes), dtype="float64")


@pytest.fixture(scope="module")
def run_and_model():
    spec = tiny_spec()
    run = train(spec)
    assert run.status == "ok" and not run.probe_errors, run.probe_errors
    model, data = build_model(spec, weights=run.weights)
    model.train()
    x, _, y, _ = device_split(data, "ce", torch.device("cpu"), torch.float64)
    return run, model, x, y


def _rows(run, kind):
    sp = run.spectra[run.spectra["kind"] == kind].sort_values("index")
    return sp["step"].to_numpy(), sp["value"].to_numpy(dtype=float)


def test_probe_records_curvature_split_of_the_final_weights(run_and_model):
    run, model, x, y = run_and_model
    split = curvature_split(model, loss_function("ce"), x, y, k=4)
    reference = {"gn_hessian": split.hessian, "gn_gauss_newton": split.gauss_newton, "gn_residual": split.residual,
                 "gn_share": split.gauss_newton_share}
    for kind in KINDS:
        steps, values = _rows(run, kind)
        assert list(steps) == [20] * 4  # the last step only
        np.testing.assert_allclose(values, reference[kind], rtol=1e-12, atol=1e-14)
    last = run.history.iloc[-1]
    assert last["step"] == 20 and last["gn_converged"] == 1.0 and last["gn_products"] == split.n_products
    assert run.history["gn_converged"].notna().sum() == 1  # measured once


def test_probe_numbers_match_the_dense_matrices(run_and_model):
    """H and G of the 67-parameter model written out: eigenvalues and shares at the certified accuracy (1e-3)."""
    run, model, x, y = run_and_model
    lf = loss_function("ce")
    h, g = full_hessian(model, lf, x, y), full_gauss_newton(model, lf, x, y)
    eh, vh = torch.linalg.eigh(h)
    top_h, top_v = eh.flip(0)[:4].numpy(), vh.flip(1)[:, :4]
    np.testing.assert_allclose(_rows(run, "gn_hessian")[1], top_h, rtol=1e-3)
    np.testing.assert_allclose(_rows(run, "gn_gauss_newton")[1], torch.linalg.eigvalsh(g).flip(0)[:4].numpy(),
                               rtol=1e-3)
    dense_share = np.array([float(top_v[:, i] @ g @ top_v[:, i]) for i in range(4)]) / top_h
    np.testing.assert_allclose(_rows(run, "gn_share")[1], dense_share, atol=1e-3)
    er = torch.linalg.eigvalsh(h - g).numpy()
    assert np.max(np.abs(_rows(run, "gn_residual")[1])) == pytest.approx(np.max(np.abs(er)), rel=1e-3)


def test_probe_is_off_by_default_and_keys_of_other_specs_stay():
    plain = tiny_spec(k=0)
    assert plain.key() != tiny_spec(k=4).key() != tiny_spec(k=5).key()
    assert RunSpec.from_json(tiny_spec(k=4).to_json()).key() == tiny_spec(k=4).key()
    assert RunSpec().key() == "d6d73c07905e9352"  # computed before the field existed
    run = train(plain.replace(**{"optim.steps": 2}))
    assert "gn_converged" not in run.history and not run.spectra["kind"].str.startswith("gn_").any()


def test_bad_k_is_named_and_ensembles_refuse_the_probe():
    with pytest.raises(ValueError, match="probes.gauss_newton_k"):
        ProbeSpec(gauss_newton_k=-1)
    with pytest.raises(ValueError, match="probes.gauss_newton_k"):
        ProbeSpec(gauss_newton_k=101)
    assert "gauss_newton_k" in unsupported_reason(tiny_spec())
