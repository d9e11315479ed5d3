"""Two sections of the Spectra page: the training path in its PCA plane, and the Gauss-Newton split.

Each draws its controls, calls the cached measurement in `analysis` and shows the figure with its
table; problems are shown as messages in the page.
"""

from __future__ import annotations

import streamlit as st

from learnmech_core.data import describe
from learnmech_core.plots.gauss_newton import curvature_split_figure
from learnmech_core.plots.trajectory import trajectory_figure

from . import analysis, spec_form, ui
from .urlstate import choice


def trajectory_section(key: str, run, points: int, present: bool) -> None:
    """Loss surface in the plane of the trajectory's top two principal directions, with the path on it."""
    if run.snapshots is None:
        st.info("This run kept no weight snapshots, so its path cannot be drawn. Train it again with "
                "*Weight snapshots* recorded.", icon=":material/info:")
        params = spec_form.explore_params(run.spec.replace(**{"probes.snapshot_every": 10}))
        st.page_link("pages/explore.py", label="Record weight snapshots for these settings",
                     icon=":material/play_circle:", query_params=params)
        return
    try:
        with st.spinner("Evaluating the loss in the plane of the training path ..."):
            result = analysis.trajectory(key, points)
    except ValueError as err:
        ui.error(err)
        return
    explained = result["explained"]
    ui.show_figure(trajectory_figure(result["surface"], result["path"], explained, present), key="trajectory",
                   name=f"{key}_trajectory")
    st.caption(f"Li et al. (2018): PCA of the {len(result['path']) - 1} snapshots' differences from the final weights; "
               f"the two directions hold {explained.sum():.1%} of the path's variance ({explained[0]:.1%} + "
               f"{explained[1]:.1%}). The path is projected onto the plane; the loss under it is the plane's, not the "
               f"path's own (table: the loss at each snapshot). Loss on {result['examples']} training examples.")
    ui.show_table(result["path"], f"{key}_trajectory_path", hide_index=True, height=200)


def gauss_newton_section(key: str, run, present: bool) -> None:
    """Top eigenvalues of H, G = JᵀH_ℓJ and R = H - G over the whole training set, on request."""
    st.markdown("**Where does the curvature come from?** The Hessian splits into the Gauss-Newton term "
                "G = JᵀH_ℓJ and a residual R = H − G (zero where the network is linear in its weights). "
                "Measured at the final weights over the whole training set, products accumulated batch by batch.")
    if not run.weights:
        st.info("This run kept no final weights, so the split cannot be measured.", icon=":material/info:")
        return
    outputs = describe(run.spec.data).n_outputs
    cols = st.columns([1, 1, 2])
    k = cols[0].number_input("Eigenvalues", 1, 20, min(2 * outputs, 20), key="gn_k", bind="query-params")
    batch = choice(cols[1].selectbox, "Batch size for accumulation", [0, 64, 256, 1024], default=256, key="gn_batch",
                   format_func=lambda b: "whole set at once" if b == 0 else str(b))
    if not (cols[2].button("Measure H, G and R", key="gn_go", icon=":material/calculate:")
            or st.session_state.get(f"gn_done:{key}:{k}:{batch}")):
        return
    try:
        with st.spinner("Lanczos on H, G and R over the training set ..."):
            result = analysis.curvature_split(key, int(k), int(batch or 0))
    except (ValueError, FloatingPointError) as err:
        ui.error(err)
        return
    st.session_state[f"gn_done:{key}:{k}:{batch}"] = True
    classes = outputs if run.spec.optim.loss == "ce" else None
    ui.show_figure(curvature_split_figure(result["table"], classes, present), key="gn_split", name=f"{key}_gn_split")
    st.caption(f"{result['examples']} examples in {result['batches']} batch(es), {result['products']} operator "
               f"products{'' if result['converged'] else ' (not all eigenvalues met the tolerance 1e-3)'}. "
               "gauss_newton_share = vᵀGv / λ for the Hessian's eigenvectors v: 1 means the direction's curvature "
               "is all Gauss-Newton.")
    ui.show_table(result["table"], f"{key}_gauss_newton_split", hide_index=True)
