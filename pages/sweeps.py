"""Sweeps: final metrics of many runs against the settings that differ between them (as TensorBoard's HParams)."""

import streamlit as st

from learnmech_app import resources, sweeps, ui
from learnmech_app.urlstate import choice
from learnmech_core.hparams import aggregate_seeds, metric_columns, setting_columns
from learnmech_core.plots import hparams as ph

ui.header(
    "Sweeps: which settings give the best outcome?",
    "Pick a set of runs (your own, a phenomenon's, or a command-line sweep's `--tag`): the settings that differ "
    "between them are found automatically and set against each run's final numbers (loss, accuracy, sharpness "
    "over its stability threshold 2/η, weight-spectrum α). The parallel-coordinates chart draws one line per run "
    "through every setting and metric (drag along an axis to highlight a range); the scatter draws one metric "
    "against one setting, a line per value of another; the table sorts by any column and downloads as CSV. "
    "Runs that differ only in their seed can be averaged.",
)
present = ui.presentation()
index = resources.run_index()
options = sweeps.groups(index)
if not options:
    st.info("No set of two or more runs yet: train some on **Explore**, run a phenomenon, or run "
            "`learnmech sweep ... --tag NAME` and open the store here.", icon=":material/info:")
    st.stop()
with ui.controls("Runs"):
    cols = st.columns([2, 1, 1, 1])
    group = choice(cols[0].selectbox, "Set of runs", list(options), key="set", format_func=options.get)
    rows = sweeps.members(index, group)
    f_arch = cols[1].multiselect("Architecture", sorted(rows["arch"].dropna().unique()), key="arch",
                                 bind="query-params")
    f_data = cols[2].multiselect("Dataset", sorted(rows["dataset"].dropna().unique()), key="dataset",
                                 bind="query-params")
    f_status = cols[3].multiselect("Status", sorted(rows["status"].dropna().unique()), key="status",
                                   bind="query-params")
for column, chosen in (("arch", f_arch), ("dataset", f_data), ("status", f_status)):
    if chosen:
        rows = rows[rows[column].isin(chosen)]
if len(rows) > sweeps.MAX_RUNS:
    st.caption(f"The newest {sweeps.MAX_RUNS} of {len(rows)} matching runs are shown.")
    rows = rows.head(sweeps.MAX_RUNS)
if len(rows) < 2:
    st.info("Fewer than two runs match: widen the filters.", icon=":material/info:")
    st.stop()
try:
    with st.spinner(f"Reading {len(rows)} runs ..."):
        table = sweeps.table(tuple(rows["key"]))
except ValueError as err:
    ui.error(err)
    st.stop()
fields, metrics = setting_columns(table), metric_columns(table)
if not fields or not metrics:
    st.info(f"These {len(table)} runs share every setting." if not fields else "These runs recorded no metric.",
            icon=":material/info:")
    st.stop()

seeded = "seed" in fields and fields != ["seed"]
cols = st.columns([1, 2, 1])
averaged = cols[0].toggle("Average over seeds", value=seeded, key="mean", bind="query-params", disabled=not seeded,
                          help="One row per setting: the mean over its seeds (with the standard deviation).")
preferred = [m for m in ("final_loss", "final_test_acc", "sharpness_ratio", "final_alpha") if m in metrics]
chart_metrics = choice(cols[1].multiselect, "Metrics on the chart", metrics, key="metrics", format_func=ph.label,
                       default=preferred[:3] or metrics[:3]) or metrics[:1]
color = choice(cols[2].selectbox, "Colour by", chart_metrics, key="color", format_func=ph.label)
shown = aggregate_seeds(table, fields) if averaged and seeded else table
axes = setting_columns(shown)
axes += ["status"] if "status" in shown and shown["status"].nunique() > 1 else []
ui.share_link()
ui.show_figure(ph.parallel_coordinates_figure(shown, axes, chart_metrics, color, present), key="parcoords",
               name=f"sweep_{group}_parallel")
cols = st.columns(3)
metric = choice(cols[0].selectbox, "Scatter: metric", metrics, key="metric", default=color, format_func=ph.label)
x = choice(cols[1].selectbox, "x axis", setting_columns(shown), key="x",
           default=next((f for f in fields if f.startswith("optim.lr")), fields[0]))
groupable = [f for f in setting_columns(shown) if f != x]
by = choice(cols[2].multiselect, "One line per", groupable, key="by", default=[f for f in groupable if f != "seed"])
ui.show_figure(ph.hparams_scatter_figure(shown, x, metric, by, present), key="scatter", name=f"sweep_{group}_{metric}")
st.caption(f"{len(table)} runs; settings that differ: {', '.join(fields)}. Sort the table by clicking a column.")
ui.show_table(shown, f"sweep_{group.replace(':', '_')}", hide_index=True)
if len(rows) <= 12:
    st.page_link("pages/compare.py", label="Overlay these runs' curves on Compare",
                 icon=":material/stacked_line_chart:", query_params={"runs": list(rows["key"])})
