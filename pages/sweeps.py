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

cols = st.columns(4)
color = choice(cols[0].selectbox, "Colour by", metrics, key="color", format_func=ph.label)
averaged = cols[1].toggle("Average over seeds", key="mean", bind="query-params",
                          disabled="seed" not in fields or fields == ["seed"],
                          help="One line per setting, the mean over its seeds (with the standard deviation).")
x = choice(cols[2].selectbox, "Scatter: x axis", fields, key="x",
           default=next((f for f in fields if f.startswith("optim.lr")), fields[0]))
groupable = [f for f in fields if f != x and not (averaged and f == "seed")]
by = choice(cols[3].selectbox, "Scatter: one line per", ["(none)", *groupable], key="by",
            default=next((f for f in groupable if f in ("model.width", "model.param", "optim.batch_size")), "(none)"))
shown = aggregate_seeds(table, fields) if averaged and "seed" in fields and fields != ["seed"] else table
axes = setting_columns(shown)
axes = [a for a in axes if a != "seeds"] + (["status"] if "status" in shown and shown["status"].nunique() > 1 else [])
ui.share_link()
ui.show_figure(ph.parallel_coordinates_figure(shown, axes, metrics, color, present), key="parcoords",
               name=f"sweep_{group}_parallel")
metric = choice(st.selectbox, "Scatter: metric", metrics, key="metric", default=color, format_func=ph.label)
ui.show_figure(ph.hparams_scatter_figure(shown, x, metric, None if by == "(none)" else by, present), key="scatter",
               name=f"sweep_{group}_{metric}")
st.caption(f"{len(table)} runs; settings that differ: {', '.join(fields)}. Sort the table by clicking a column.")
ui.show_table(shown, f"sweep_{group.replace(':', '_')}", hide_index=True)
if len(rows) <= 12:
    st.page_link("pages/compare.py", label="Overlay these runs' curves on Compare",
                 icon=":material/stacked_line_chart:", query_params={"runs": list(rows["key"])})
