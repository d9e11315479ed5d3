"""Figure builders for runs and spectra: tidy data in, the right traces and references out."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec
from learnmech_core.plots import runs as prun
from learnmech_core.plots import spectra as psp
from learnmech_core.plots.style import MAX_POINTS, arch_color, dataset_dash
from learnmech_core.train import Run


def make_run(arch="mlp", data="digits", lr=0.1, seed=0, steps=100, status="ok", loss=None, width=16, extra=None):
    spec = RunSpec(model=ModelSpec(arch=arch, width=width), data=DataSpec(name=data, n_train=64, n_test=32),
                   optim=OptimSpec(lr=lr, steps=steps), seed=seed)
    step = np.arange(steps + 1)
    hist = {"step": step, "time_s": step * 0.01,
            "loss": loss if loss is not None else np.exp(-step / 30.0) + 0.01 * (seed + 1),
            "sharpness": 2.0 / lr * (1 - np.exp(-step / 20.0))}
    hist.update(extra or {})
    return Run(spec=spec, history=pd.DataFrame(hist), status=status)


def test_curves_colour_by_arch_dash_by_dataset_and_hover_spec():
    runs = [make_run("mlp", "digits"), make_run("cnn", "digits"), make_run("mlp", "moons")]
    fig = prun.curves_figure(runs, "loss")
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.line.color for t in lines] == [arch_color("mlp"), arch_color("cnn"), arch_color("mlp")]
    assert [t.line.dash for t in lines] == [dataset_dash("digits"), dataset_dash("digits"), dataset_dash("moons")]
    assert all(r.spec.key() in t.hovertemplate for r, t in zip(runs, lines, strict=True))
    assert fig.layout.yaxis.type == "log"  # positive losses
    assert "?" in fig.layout.title.text


def test_labels_name_what_differs():
    runs = [make_run(lr=0.1), make_run(lr=0.2)]
    labels = prun.run_labels(runs)
    assert labels[0] != labels[1] and "η=0.1" in labels[0] and "η=0.2" in labels[1]
    assert prun.varying_fields([r.spec for r in runs]) == ["optim.lr"]


def test_sharpness_has_two_over_eta_and_normalised_meets_one():
    runs = [make_run(lr=0.1)]
    fig = prun.sharpness_figure(runs)
    assert any(abs(s.y0 - 20.0) < 1e-9 for s in fig.layout.shapes)
    norm = prun.sharpness_figure(runs, normalised=True)
    assert any(abs(s.y0 - 1.0) < 1e-9 for s in norm.layout.shapes)
    assert max(norm.data[0].y) == pytest.approx(1.0, abs=0.01)


def test_diverged_run_drawn_up_to_its_last_finite_point():
    loss = np.linspace(1.0, 5.0, 11)
    loss[-1] = np.inf
    run = make_run(steps=10, status="diverged", loss=loss)
    fig = prun.curves_figure([run], "loss")
    line, marker = fig.data[0], fig.data[1]
    assert np.isnan(line.y[-1]) and line.y[-2] == pytest.approx(loss[-2])
    assert marker.x[0] == 9 and "diverged" in marker.text[0]
    assert "(diverged)" in line.name


def test_traces_are_downsampled():
    run = make_run(steps=MAX_POINTS * 3)
    fig = prun.curves_figure([run], "loss")
    assert len(fig.data[0].x) <= MAX_POINTS
    assert fig.data[0].x[-1] == MAX_POINTS * 3  # the last point is kept


def test_x_axes():
    run = make_run(lr=0.5, steps=10)
    assert prun.x_values(run.history, run.spec, "lr_time")[-1] == pytest.approx(5.0)
    with_lr = Run(run.spec, run.history.assign(lr=0.25))  # the logged rate (a schedule) wins
    assert prun.x_values(with_lr.history, with_lr.spec, "lr_time")[-1] == pytest.approx(2.5)
    assert prun.x_values(run.history, run.spec, "fraction")[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="x must be one of"):
        prun.x_values(run.history, run.spec, "epochs")


def test_seed_groups_give_mean_and_band():
    runs = [make_run(seed=s) for s in range(3)] + [make_run(arch="cnn", seed=s) for s in range(2)]
    groups = prun.group_runs(runs, ["model.arch"])
    assert [len(m) for _, m in groups] == [3, 2]
    fig = prun.band_figure(groups, "loss", band="minmax")
    fills = [t for t in fig.data if t.fill == "tonexty"]
    means = [t for t in fig.data if t.showlegend is not False]
    assert len(fills) == 2 and len(means) == 2
    grid_mean = np.asarray(means[0].y)
    assert np.all(np.asarray(fills[0].y) <= grid_mean + 1e-12)  # lower edge below the mean


def test_presentation_mode_keeps_band_edges_invisible():
    groups = prun.group_runs([make_run(seed=s) for s in range(2)], [])
    fig = prun.band_figure(groups, "loss", presentation=True)
    assert all(t.line.width == 0 for t in fig.data if t.meta == "band")
    assert fig.layout.font.size > 13


def test_smooth_is_identity_at_zero_and_keeps_nan():
    y = np.array([1.0, np.nan, 3.0, 4.0])
    assert np.array_equal(prun.smooth(y, 0), y, equal_nan=True)
    s = prun.smooth(y, 0.5)
    assert s[0] == 1.0 and np.isnan(s[1]) and 1.0 < s[2] < 3.0


def test_threshold_lines_follow_the_optimiser():
    gd = make_run(lr=0.1)
    mom = Run(gd.spec.replace(**{"optim.name": "momentum", "optim.momentum": 0.9}), gd.history)
    adam = Run(gd.spec.replace(**{"optim.name": "adam"}), gd.history)
    assert prun.two_over_eta_lines([gd]) == [(pytest.approx(20.0), "2/η = 20")]
    (value, label), = prun.two_over_eta_lines([mom])
    assert value == pytest.approx(38.0) and label.startswith("(2+2μ)/η")
    assert prun.two_over_eta_lines([adam]) == []  # raw sharpness of Adam has no fixed threshold
    assert prun.two_over_eta_lines([adam], column="precond_sharpness")[0][0] == pytest.approx(380.0)


def test_band_figure_draws_a_given_series():
    runs = [make_run(seed=s) for s in range(2)]
    fig = prun.band_figure(prun.group_runs(runs, []), "loss",
                           series=lambda r: (r.history["step"] / 100.0, r.history["loss"] / r.history["loss"][0]),
                           x_title="fraction", y_title="loss / initial")
    mean = [t for t in fig.data if t.showlegend is not False][0]
    assert mean.x[-1] == pytest.approx(1.0) and mean.y[0] == pytest.approx(1.0)
    assert fig.layout.xaxis.title.text == "fraction"


def test_empty_metric_says_so():
    fig = prun.curves_figure([make_run()], "test_acc")
    assert not fig.data and "no run has recorded" in fig.layout.annotations[0].text


def test_thumbnail_is_small_copy():
    fig = prun.curves_figure([make_run()], "loss")
    fig.update_yaxes(title_text="a long axis title that cannot fit the height of a card")
    small = prun.thumbnail(fig, height=190)
    assert small.layout.height == 190 and small.layout.showlegend is False and small.layout.title.text is None
    assert small.layout.yaxis.title.text.count("<br>") == 1  # broken onto two lines
    assert fig.layout.title.text and "<br>" not in fig.layout.yaxis.title.text  # the original is untouched


def test_thumbnail_breaks_titles_outside_markup():
    text = "rescaled time D s<sup>2\u22122/D</sup>(t \u2212 t<sub>\u00bd</sub>) of every mode"
    broken = prun._two_lines(text, 20)
    assert broken.count("<br>") == 1 and "<sup>2\u22122/D</sup>" in broken and "<sub>\u00bd</sub>" in broken
    assert prun._two_lines("short", 20) == "short"


def test_status_table_and_metric_columns():
    runs = [make_run(extra={"test_acc": np.linspace(0, 1, 101), "alpha_layers.0.weight": np.full(101, 3.0)})]
    table = prun.status_table(runs)
    assert table.loc[0, "final test acc"] == pytest.approx(1.0)
    cols = prun.metric_columns(runs)
    assert cols[:3] == ["loss", "test_acc", "sharpness"] and "alpha_layers.0.weight" in cols
    assert prun.metric_label("alpha_layers.0.weight").startswith("power-law α")


# ---------------------------------------------------------------------------------------------- spectra


def spectra_table():
    rows = [(0, "hessian_density_x", "all", i, float(x)) for i, x in enumerate(np.linspace(-1, 10, 50))]
    rows += [(0, "hessian_density_y", "all", i, float(np.exp(-x))) for i, x in enumerate(np.linspace(-1, 10, 50))]
    for step in (0, 10, 20):
        rows += [(step, "hessian_topk", "all", i, 5.0 - i + step / 10) for i in range(3)]
    return pd.DataFrame(rows, columns=["step", "kind", "layer", "index", "value"])


def test_hessian_density_log_scale_and_topk_with_two_over_eta():
    s = spectra_table()
    assert psp.spectra_steps(s, "hessian_topk") == [0, 10, 20]
    assert psp.nearest_step([0, 10, 20], 14) == 10
    fig = psp.hessian_density_figure(s, 0, lr=0.5)
    assert fig.layout.yaxis.type == "log" and len(fig.data[0].x) == 50
    topk = psp.topk_figure(s, lr=0.5)
    assert len(topk.data) == 3 and any(abs(sh.y0 - 4.0) < 1e-9 for sh in topk.layout.shapes)


def test_esd_figure_draws_mp_and_power_law_on_log_log_axes():
    from learnmech_core import spectra

    rng = np.random.default_rng(0)
    w = rng.standard_normal((400, 100))
    ev = spectra.weight_esd(w)
    mp = spectra.marchenko_pastur_fit(ev, 100 / 400)
    pl = spectra.power_law_alpha(ev)
    fig = psp.esd_figure(ev, "layer", mp, pl)
    names = [t.name for t in fig.data]
    assert any("Marchenko" in n for n in names) and any("power-law" in n for n in names)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    outline = fig.data[0]
    density = np.nan_to_num(np.asarray(outline.y[:-1], dtype=float))
    assert float(np.sum(density * np.diff(np.asarray(outline.x)))) == pytest.approx(1.0, abs=1e-6)


def test_landscape_figures():
    a = np.linspace(-1, 1, 5)
    one = pd.DataFrame({"alpha": np.r_[a, a], "loss": np.r_[a ** 2, 2 * a ** 2], "direction": ["d1"] * 5 + ["d2"] * 5})
    fig = psp.landscape_1d_figure(one)
    assert len(fig.data) == 2
    aa, bb = np.meshgrid(a, a, indexing="ij")
    two = pd.DataFrame({"alpha": aa.ravel(), "beta": bb.ravel(), "loss": (aa ** 2 + bb ** 2 + 0.1).ravel()})
    contour = psp.landscape_2d_figure(two, "contour")
    assert isinstance(contour.data[0], go.Contour) and np.asarray(contour.data[0].z).shape == (5, 5)
    surface = psp.landscape_2d_figure(two, "surface")
    assert isinstance(surface.data[0], go.Surface)
    with pytest.raises(ValueError, match="contour or surface"):
        psp.landscape_2d_figure(two, "bars")


def test_alpha_figure_from_history_columns():
    h = pd.DataFrame({"step": [0, 10], "alpha_layers.0.weight": [6.0, 4.0], "alpha_layers.1.weight": [7.0, 3.5],
                      "alpha_mean": [6.5, 3.75]})
    fig = psp.alpha_figure(h)
    assert [t.name for t in fig.data] == ["layers.0.weight", "layers.1.weight"]


def test_annotations_on_log_axes_sit_at_their_data_value():
    """Plotly reads annotation coordinates on a log axis as log10; shapes as data values. Both must agree."""
    import math

    from learnmech_core.plots.spectra import esd_figure
    from learnmech_core.plots.style import layout
    from learnmech_core.spectra import marchenko_pastur_fit

    fig = go.Figure(go.Scatter(x=[1, 10, 1000], y=[1, 0.1, 0.01]))
    fig.add_vline(x=200, annotation_text="100% train")
    fig.add_hline(y=0.2, annotation_text="prediction")
    for _ in range(2):  # idempotent
        layout(fig, "t", log_x=True, log_y=True)
    vline, hline = fig.layout.annotations
    assert fig.layout.shapes[0].x0 == 200 and vline.x == pytest.approx(math.log10(200))
    assert fig.layout.shapes[1].y0 == 0.2 and hline.y == pytest.approx(math.log10(0.2))
    linear = layout(go.Figure(go.Scatter(x=[1, 2], y=[1, 2])).add_vline(x=1.5, annotation_text="a"), "t")
    assert linear.layout.annotations[0].x == 1.5  # linear axes untouched

    rng = np.random.default_rng(0)
    w = rng.standard_normal((400, 100))
    evals = np.linalg.eigvalsh(w.T @ w / 400)
    mp = marchenko_pastur_fit(evals, 100 / 400)
    esd = esd_figure(evals, "layer", mp=mp)
    (edge,) = [a for a in esd.layout.annotations if a.xref == "x"]
    assert edge.x == pytest.approx(math.log10(mp.lambda_plus))  # the MP edge label sits on the MP edge line
