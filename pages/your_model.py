"""Your own model: WeightWatcher-style spectra of an uploaded safetensors checkpoint (or a stored run)."""

import math

import streamlit as st

from learnmech_app import checkpoint_view, resources, ui
from learnmech_app.urlstate import choice
from learnmech_core.checkpoint_spectra import summary
from learnmech_core.config import current_caps
from learnmech_core.plots.checkpoint import alpha_by_layer_figure, checkpoint_esd_figure

ui.header(
    "Your own model: what do its weight spectra say about its training?",
    "Upload the weights of a network you trained, as a `.safetensors` file (in PyTorch: `from safetensors.torch "
    "import save_file; save_file(model.state_dict(), 'model.safetensors')`). Pickled `.pt`/`.pth` files are "
    "refused, since loading them can run code. Each weight matrix gets its empirical spectral density (ESD, "
    "eigenvalues of WᵀW/N) with a Marchenko–Pastur fit of its random bulk and a power-law fit of its tail, as "
    "WeightWatcher reports them (Martin & Mahoney 2021): α (well-trained layers have 2 ≤ α ≤ 6; smaller is "
    "heavier-tailed), weighted α = α·log₁₀ λ_max, and the rand-ESD, the spectrum of the same matrix with its "
    "entries shuffled. Structure learned from data stands above the rand-ESD; a spike in the rand-ESD itself "
    "comes from a few huge entries (a *correlation trap*). Or analyse the final weights of a stored run.",
)
present = ui.presentation()
caps = current_caps()
source = choice(st.segmented_control, "Weights from", ["file", "run"], default="file", key="source",
                format_func={"file": "a safetensors file", "run": "a stored run"}.get) or "file"
result, label = None, ""
try:
    if source == "file":
        upload = st.file_uploader(f"Checkpoint (.safetensors, up to {caps.max_upload_mb:g} MB)", type=["safetensors"],
                                  key="checkpoint", max_upload_size=max(1, math.ceil(caps.max_upload_mb)))
        if upload is not None:
            with st.spinner("Computing the spectra ..."):
                result, label = checkpoint_view.analyse_upload(upload.getvalue(), upload.name), upload.name
    else:
        index = resources.run_index()
        index = index[index["status"] != "failed"] if len(index) else index
        labels = {r.key: f"{r.arch} · {r.dataset} · w={r.width} · {r.key[:8]} ({r.source})" for r in index.itertuples()}
        key = choice(st.selectbox, "Run", list(labels), key="run", format_func=labels.get) if labels else None
        if key:
            with st.spinner("Computing the spectra ..."):
                result, label = checkpoint_view.analyse_run(key), f"run {key}"
except ValueError as err:
    ui.error(err, prefix="The weights cannot be analysed: ")
if result is None:
    st.stop()

table, spectra, skipped = result
if not len(table):
    st.warning(f"{label} holds no weight matrix with at least 10 eigenvalues.", icon=":material/info:")
else:
    s = summary(table)
    cols = st.columns(4)
    cols[0].metric("Layers analysed", s["layers"])
    cols[1].metric("Mean α", f"{s['alpha']:.2f}")
    cols[2].metric("Mean weighted α", f"{s['alpha_weighted']:.2f}")
    cols[3].metric("Correlation traps", s["correlation_traps"])
    ui.show_figure(alpha_by_layer_figure(table, present), key="alphas", name="checkpoint_alpha")
    layer = choice(st.selectbox, "Layer", list(table["layer"]), key="layer")
    ui.show_figure(checkpoint_esd_figure(spectra[layer], present), key="esd", name=f"checkpoint_esd_{layer}")
    st.caption("λ_max and the rand-ESD's λ_max in the table are eigenvalues of WᵀW (WeightWatcher's convention); "
               "the chart's axis is WᵀW/N. n_spikes: eigenvalues above the Marchenko–Pastur edge plus 3 "
               "Tracy–Widom scales.")
    ui.show_table(table.round(4), "checkpoint_layers", hide_index=True)
if len(skipped):
    with st.expander(f"{len(skipped)} tensor(s) without a spectrum"):
        st.dataframe(skipped, hide_index=True)
