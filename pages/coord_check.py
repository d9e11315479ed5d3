"""muP coordinate check: how much each layer's output moves in the first steps, against width, SP vs muP."""

import streamlit as st

from learnmech_app import coord_check_view, ui
from learnmech_app import datasets as ds
from learnmech_app.urlstate import choice
from learnmech_core import DataSpec, ModelSpec, OptimSpec, RunSpec
from learnmech_core.coord_check import width_slopes
from learnmech_core.data import describe
from learnmech_core.plots.coord_check import coord_check_figure
from learnmech_core.registry import ACTIVATIONS, ARCHITECTURES

WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048]
DEFAULTS = {"adam": 0.01, "sgd": 0.1}

ui.header(
    "muP coordinate check: do the layers' updates keep their size as the network widens?",
    "The check Yang et al. (2022, Tensor Programs V) use to test a muP implementation: train a few steps at "
    "several widths and measure how far each layer's output coordinates have moved from their initial values, "
    "mean |h_t − h_0| over a batch. Under muP every line is flat: a coordinate moves by the same amount at every "
    "width, which is why the best learning rate found on a small model carries over to a large one (see the "
    "muP-transfer phenomenon). Under the standard parametrisation the read-out's change grows with width (slope "
    "about 1 with Adam, whose first updates are sign-like), so a learning rate tuned small blows up large. Both "
    "use this app's own models and per-layer learning rates; several seeds give the bars (min to max).",
)
present = ui.presentation()
with ui.controls():
    cols = st.columns(4)
    arch = choice(cols[0].selectbox, "Architecture", [a for a in ARCHITECTURES if a != "deep_linear"], key="arch")
    dataset = choice(cols[0].selectbox, "Dataset", list(ds.dataset_options()), key="data", default="digits",
                     format_func=ds.dataset_options().get)
    activation = choice(cols[1].selectbox, "Activation", list(ACTIVATIONS), key="act", default="tanh")
    depth = cols[1].number_input("Depth", 1, 8, 2, key="depth", bind="query-params")
    optimizer = choice(cols[2].segmented_control, "Optimiser", ["adam", "sgd"], key="opt", default="adam") or "adam"
    lr = cols[2].number_input("Learning rate", 1e-5, 10.0, DEFAULTS[optimizer], format="%g", key=f"lr_{optimizer}",
                              bind="query-params")
    widths = cols[3].multiselect("Widths", WIDTHS, default=[32, 64, 128, 256, 512], key="widths", bind="query-params")
    base = cols[3].selectbox("muP base width", WIDTHS, index=2, key="base", bind="query-params",
                             help="The width at which muP equals SP (muP rescales relative to it).")
    cols = st.columns(3)
    steps = cols[0].slider("Steps", 1, 10, 4, key="steps", bind="query-params")
    seeds = cols[1].slider("Seeds", 1, 5, 3, key="seeds", bind="query-params")
    n_train = cols[2].number_input("Training examples (full batch)", 16, 2048, 256, key="n", bind="query-params")
try:
    task = describe(DataSpec(name=dataset)).task
    spec = RunSpec(model=ModelSpec(arch=arch, width=max(widths or [base]), depth=int(depth), activation=activation,
                                   base_width=int(base)),
                   data=DataSpec(name=dataset, n_train=int(n_train), n_test=0),
                   optim=OptimSpec(name=optimizer, lr=float(lr), loss="ce" if task == "classification" else "mse",
                                   steps=int(steps)))
    if len(set(widths)) < 2:
        raise ValueError("choose at least two widths")
    with st.spinner(f"Training {2 * len(widths) * seeds} models for {steps} steps ..."):
        table = coord_check_view.table(spec.to_json(), tuple(sorted(widths)), int(seeds), int(steps))
except ValueError as err:
    ui.error(err, prefix="The check cannot run: ")
    st.stop()
ui.share_link()
step = st.select_slider("Step t", list(range(1, int(steps) + 1)), value=int(steps), key="t", bind="query-params") \
    if steps > 1 else 1
ui.show_figure(coord_check_figure(table, step, present), key="coord", name=f"coord_check_{arch}_{optimizer}")
slopes = width_slopes(table, step).pivot(index=["layer", "role"], columns="param", values="slope").reset_index()
slopes.columns.name = None
st.markdown(f"**Slope of log(change) against log(width) at step {step}** (0: width-independent; 1: grows in "
            "proportion to width).")
ui.show_table(slopes.round(3), f"coord_check_slopes_{arch}_{optimizer}", hide_index=True)
with st.expander("All measurements"):
    ui.show_table(table, f"coord_check_{arch}_{optimizer}", hide_index=True, height=260)
