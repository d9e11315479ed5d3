"""Spectra and landscape of a stored run: Hessian spectrum, weight ESDs with fits, loss slices."""

import streamlit as st

from learnmech_app import analysis, resources, run_picker, spec_form, ui
from learnmech_app.spectra_sections import gauss_newton_section, trajectory_section
from learnmech_app.urlstate import choice
from learnmech_core.plots import spectra as psp

ui.header(
    "Spectra and landscape: what does the network look like inside?",
    "For a stored run, look at the curvature of its loss and the spectra of its weights. The Hessian's spectral "
    "density shows a bulk near zero and a few outliers; its top eigenvalues rise until they meet 2/η. Each "
    "layer's weight matrix has an empirical spectral density (ESD): random matrices follow the Marchenko–Pastur "
    "law, while trained layers grow a power-law tail whose exponent α shrinks as they learn. The landscape tab "
    "draws the loss around the final weights along random or top-curvature directions. Move the step slider "
    "to go through training.",
)
present = ui.presentation()
index = resources.run_index()
SPECTRA = {"measure": ["sharpness", "topk", "density", "esd"]}  # Explore with every spectrum recorded
if not len(index):
    st.info("No runs are stored yet. Train one with its spectra recorded:", icon=":material/info:")
    st.page_link("pages/explore.py", label="Open Explore with Hessian and weight spectra switched on, then press Run",
                 icon=":material/play_circle:", query_params=SPECTRA)
    st.stop()
key = run_picker.pick_one(index, default=run_picker.with_hessian_spectra(index))
run, source = resources.load_run(key)
if run is None:
    ui.error(f"run {key} could not be read")
    st.stop()
spectra, lr = run.spectra, run.spec.optim.lr
alpha_cols = [c for c in run.history.columns if c.startswith("alpha_")]
alpha_steps = run.history.dropna(subset=alpha_cols, how="all")["step"] if alpha_cols else []
steps = sorted(set(psp.spectra_steps(spectra, "")) | {int(s) for s in alpha_steps})
if not steps:
    st.warning("This run recorded no spectra. Open it in Explore with *Weight spectra*, *Top-k Hessian "
               "eigenvalues* or *Hessian density* switched on; the landscape tab works with its final weights.",
               icon=":material/info:")
    st.page_link("pages/explore.py", label="Record spectra for these settings", icon=":material/play_circle:",
                 query_params=spec_form.explore_params(run.spec) | SPECTRA)
step = st.select_slider("Step", steps, value=steps[-1], key="step", bind="query-params") if len(steps) > 1 else (
    steps[0] if steps else 0)
ui.share_link()

hessian, weights, land = st.tabs(["Hessian", "Weights", "Landscape"], key="tab", bind="query-params")
if hessian.open is not False:
    with hessian:
        dsteps = psp.spectra_steps(spectra, "hessian_density")
        has_topk = bool(psp.spectra_steps(spectra, "hessian_topk"))
        if not dsteps and not has_topk:
            st.info("No Hessian spectra were recorded for this run.", icon=":material/info:")
        cols = st.columns(1 if present or not (dsteps and has_topk) else 2)
        if dsteps:
            with cols[0]:
                ui.show_figure(psp.hessian_density_figure(spectra, psp.nearest_step(dsteps, step), present, lr),
                               key="density", name=f"{key}_hessian_density")
        if has_topk:
            with cols[-1]:
                ui.show_figure(psp.topk_figure(spectra, lr, present, step), key="topk", name=f"{key}_hessian_topk")
        table = psp.eigenvalue_table(spectra, "hessian_topk", step)
        if len(table):
            ui.show_table(table, f"{key}_hessian_step{step}", hide_index=True, height=200)
        gauss_newton_section(key, run, present)
if weights.open is not False:
    with weights:
        estep = psp.nearest_step(psp.spectra_steps(spectra, "weight_esd"), step)
        layers = analysis.esd_layers(run, estep) if estep is not None else []
        if not layers and not alpha_cols:
            st.info("No weight spectra were recorded for this run.", icon=":material/info:")
        cols = st.columns(1 if present or not (layers and alpha_cols) else 2)
        if layers:
            with cols[0]:
                layer = st.selectbox("Layer", layers, key="layer", bind="query-params")
                fits = analysis.esd_fits(key, estep, layer)
                for note in fits["notes"]:
                    st.caption(note)
                ui.show_figure(psp.esd_figure(fits["eigenvalues"], layer, fits["mp"], fits["power_law"], present,
                                              step=estep), key="esd", name=f"{key}_esd_{layer}")
        if alpha_cols:
            with cols[-1]:
                ui.show_figure(psp.alpha_figure(run.history, present, step), key="alpha", name=f"{key}_alpha")
if land.open is not False:
    with land:
        cols = st.columns([2.2, 1, 1.4, 1.6, 1.6])
        directions = choice(cols[0].selectbox, "Directions", ["random", "hessian", "trajectory"], key="dirs",
                            format_func={"random": "random, filter-normalised", "hessian": "top Hessian eigenvectors",
                                         "trajectory": "training path (PCA of snapshots)"}.get)
        path = directions == "trajectory"
        dims = choice(cols[1].segmented_control, "Slice", [1, 2], default=1, key="dims",
                      format_func=lambda d: f"{d}-D", disabled=path) or 1
        kind = cols[2].segmented_control("Plot", ["contour", "surface"], default="contour", key="plot",
                                         bind="query-params", disabled=dims == 1 or path) or "contour"
        radius = cols[3].slider("Range ±", 0.1, 3.0, 1.0, 0.1, key="radius", bind="query-params", disabled=path)
        points = cols[4].slider("Points per axis", 5, 41, 21, 2, key="points", bind="query-params")
        if path:
            trajectory_section(key, run, int(points), present)
        elif not run.weights:
            st.info("This run kept no final weights, so its landscape cannot be drawn.", icon=":material/info:")
        else:
            try:
                with st.spinner("Evaluating the loss around the trained weights ..."):
                    table = analysis.landscape(key, directions, int(dims), float(radius), int(points), 0)
                x_title = "α (filter-normalised units)" if directions == "random" else "α (parameter-space distance)"
                fig = (psp.landscape_1d_figure(table, present, x_title=x_title) if dims == 1 else
                       psp.landscape_2d_figure(table, kind, present, x_title=x_title,
                                               y_title=x_title.replace("α", "β")))
                ui.show_figure(fig, key="landscape", name=f"{key}_landscape_{dims}d")
                st.caption("Slices are at the final weights. Filter normalisation (Li et al. 2018) rescales each "
                           "filter of a random direction to the norm of the weights it perturbs.")
            except ValueError as err:
                ui.error(err)
