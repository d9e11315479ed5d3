"""Compare: overlay any stored runs; seeds averaged into a band; a score for how well curves collapse."""

import math

import streamlit as st

from learnmech_app import analysis, resources, run_picker, ui
from learnmech_app.urlstate import choice
from learnmech_core.plots import runs as prun
from learnmech_core.universality import KINDS

ui.header(
    "Compare: do different runs follow the same curve?",
    "Pick stored runs (filter by architecture, dataset or phenomenon), choose a recorded quantity and an x axis, "
    "and see them overlaid. Runs that differ only in their seed are drawn as one mean line with a band, so "
    "run-to-run noise is not mistaken for a difference; group by any setting instead. Normalised x axes "
    "and normalised quantities (sharpness over 2/η, loss over its initial value, ...) let runs of different "
    "lengths and learning rates meet; the *collapse score* says how much of the spread the normalisation "
    "removes (below 1: the curves collapse).",
)
present = ui.presentation()
index = resources.run_index()
if not len(index):
    st.info("No runs are stored yet, and no gallery is installed. Train a first run (about 5 seconds):",
            icon=":material/info:")
    st.page_link("pages/explore.py", label="Open Explore and press Run", icon=":material/play_circle:")
    st.stop()
index["phenomenon"] = index["tags"].fillna("").apply(
    lambda t: ",".join(x.split(":", 1)[1] for x in t.split(",") if x.startswith("phenomenon:")))

with ui.controls("Choose runs"):
    cols = st.columns(4)
    f_arch = cols[0].multiselect("Architecture", sorted(index["arch"].dropna().unique()), key="f_arch",
                                 bind="query-params")
    f_data = cols[1].multiselect("Dataset", sorted(index["dataset"].dropna().unique()), key="f_data",
                                 bind="query-params")
    phen = sorted({p for v in index["phenomenon"] for p in v.split(",") if p})
    f_ph = cols[2].multiselect("Phenomenon", phen, key="f_ph", bind="query-params")
    f_status = cols[3].multiselect("Status", sorted(index["status"].dropna().unique()), key="f_status",
                                   bind="query-params")
    shown = index
    if f_arch:
        shown = shown[shown["arch"].isin(f_arch)]
    if f_data:
        shown = shown[shown["dataset"].isin(f_data)]
    if f_ph:
        shown = shown[shown["phenomenon"].apply(lambda v: any(p in v.split(",") for p in f_ph))]
    if f_status:
        shown = shown[shown["status"].isin(f_status)]
    chosen = run_picker.pick_many(index, shown, placeholder="the newest 8 matching runs (your own first)")
mine = shown[shown["source"] == "store"] if (shown["source"] == "store").any() else shown
keys = chosen or list(mine["key"])[:8]  # by default the newest of your own runs
runs = [r for r in (resources.load_run(k)[0] for k in keys) if r is not None]
if not runs:
    st.info("No stored run matches these filters: clear them under *Choose runs*.", icon=":material/info:")
    st.stop()
if not chosen:
    st.caption(f"Showing the {len(runs)} newest of {len(shown)} matching runs"
               f"{' from your store' if mine is not shown else ''}; choose runs above to pick others.")

metrics = prun.metric_columns(runs)
fields = prun.varying_fields([r.spec for r in runs])
auto_group = [f for f in fields if f not in ("seed", "data.seed")]
with st.container(horizontal=True, vertical_alignment="bottom"):
    metric = choice(st.selectbox, "Quantity", metrics, key="metric", format_func=prun.metric_label, width=260) or "loss"
    kinds = ["none"] + [k for k, n in KINDS.items() if n.column == metric]
    norm = choice(st.selectbox, "Normalise", kinds, key="norm", width=300,
                  format_func=lambda k: "raw values" if k == "none" else
                  f"{KINDS[k].y_norm_label} vs {KINDS[k].x_norm_label}",
                  help="The core's normalisations (learnmech_core.universality) that should make curves collapse.")
    x = choice(st.selectbox, "x axis", list(prun.X_AXES), key="x", format_func=prun.X_AXES.get, width=260,
               disabled=norm != "none") or "step"
    group = st.multiselect("Group by", fields, key="group", bind="query-params", width=320,
                           placeholder="automatic: every setting except the seed",
                           help="Runs equal in these settings form one group: its mean line with a band.")
    band = choice(st.selectbox, "Band", ["std", "minmax", "none"], key="band", width=140,
                  format_func={"std": "mean ± std", "minmax": "min–max", "none": "no band"}.get) or "std"
    smoothing = st.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="smooth", bind="query-params", width=200)
    log_y = st.toggle("Log y", key="logy", bind="query-params")
    ui.share_link()

groups = prun.group_runs(runs, group or auto_group)
kind = None if norm in (None, "none") else norm
if kind:
    n = KINDS[kind]
    refs = [(1.0, "stability threshold")] if kind in ("sharpness", "precond_sharpness") else []
    fig = prun.band_figure(groups, metric, "step", band, smoothing, log_y or None, present, references=refs,
                           series=analysis.normalised_series(kind), x_title=n.x_norm_label, y_title=n.y_norm_label,
                           title=f"Do the curves collapse? {n.description}")
else:
    refs = prun.two_over_eta_lines(runs, column=metric) if metric in ("sharpness", "precond_sharpness") else []
    fig = prun.band_figure(groups, metric, x, band, smoothing, log_y or None, present, references=refs)
ui.show_figure(fig, key="compare", name=f"compare_{metric}")
score, meaning = analysis.collapse(runs, metric, x, kind)
cols = st.columns(4)
cols[0].metric("Collapse score" if kind else "Spread", "n/a" if not math.isfinite(score) else f"{score:.3g}",
               help=meaning)
cols[1].metric("Runs", len(runs))
cols[2].metric("Groups", len(groups))
st.caption(("Collapse score: " if kind else "Spread: ") + meaning)
st.subheader("Runs shown")
ui.show_table(prun.status_table(runs), "compared_runs", hide_index=True)
