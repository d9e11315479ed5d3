"""Runs: the store as a table; download, upload and delete runs."""

import json
import math

import streamlit as st

from learnmech_app import resources, spec_form, ui
from learnmech_core.config import current_caps

ui.header(
    "Runs: everything that has been trained",
    "Every finished run is kept in the store under a key that is the hash of its exact settings, so the same "
    "settings are never trained twice. Runs of the shipped gallery are listed too (read-only). Filter and sort "
    "the table, open a run to download its history (Parquet or CSV), its spectra and its settings (JSON), or "
    "the whole run as one file that another learnmech installation can import. Import such a file below.",
)
table = resources.run_index()
hosted = resources.hosted()

with ui.controls("Filter"):
    cols = st.columns(4)
    text = cols[0].text_input("Search (key, tag, any field)", key="q", bind="query-params")
    options = {c: sorted(str(v) for v in table[c].dropna().unique()) for c in ("arch", "dataset", "status", "source")
               if c in table}
    names = {"arch": "Architecture", "dataset": "Dataset", "status": "Status"}
    chosen = {c: cols[i + 1].multiselect(names[c], options[c], key=f"f_{c}", bind="query-params")
              for i, c in enumerate(c for c in options if c in names)}
shown = table
for c, values in chosen.items():
    if values:
        shown = shown[shown[c].astype(str).isin(values)]
if text:
    mask = shown.astype(str).apply(lambda col: col.str.contains(text, case=False, regex=False)).any(axis=1)
    shown = shown[mask]
st.caption(f"{len(shown)} of {len(table)} runs · store at `{resources.store_location()}`")
if not len(table):
    st.info("Nothing is stored yet, and no gallery is installed. Train a first run (about 5 seconds), or import "
            "a run file below.", icon=":material/info:")
    st.page_link("pages/explore.py", label="Open Explore and press Run", icon=":material/play_circle:")
elif not len(shown):
    st.info("No run matches these filters.", icon=":material/filter_alt_off:")
    if st.button("Clear the filters", key="clear_filters", icon=":material/filter_alt_off:"):
        for k in ["q", *(f"f_{c}" for c in chosen)]:
            st.session_state.pop(k, None)
            st.query_params.pop(k, None)
        st.rerun()
view = shown.drop(columns=[c for c in ("created",) if c in shown])
selection = ui.show_table(view, "runs", hide_index=True, on_select="rerun", selection_mode="single-row",
                          key="runs_table")
picked = selection.selection.rows if selection is not None and hasattr(selection, "selection") else []
if picked and st.session_state.get("_picked") != picked:  # a click in the table opens that run
    st.session_state["_picked"] = picked
    st.session_state["run"] = str(view.iloc[picked[0]]["key"])

keys = list(shown["key"]) if len(shown) else []
run_key = st.selectbox("Run", keys, index=None, key="run", bind="query-params", placeholder="choose a run ...")
if run_key:
    run, source = resources.load_run(run_key)
    if run is None:
        ui.error(f"run {run_key} could not be read from the store")
    else:
        st.subheader(f"Run {run_key} ({source}): {run.status}")
        if run.message:
            st.caption(run.message)
        cols = st.columns(3)
        cols[0].json(json.loads(run.spec.to_json()), expanded=False)
        with cols[1]:
            st.markdown("**Downloads**")
            st.download_button("History (Parquet)", data=lambda: run.history.to_parquet(index=False),
                               file_name=f"{run_key}_history.parquet", on_click="ignore", key="dl_hp")
            st.download_button("History (CSV)", data=lambda: run.history.to_csv(index=False),
                               file_name=f"{run_key}_history.csv", mime="text/csv", on_click="ignore", key="dl_hc")
            if len(run.spectra):
                st.download_button("Spectra (Parquet)", data=lambda: run.spectra.to_parquet(index=False),
                                   file_name=f"{run_key}_spectra.parquet", on_click="ignore", key="dl_sp")
                st.download_button("Spectra (CSV)", data=lambda: run.spectra.to_csv(index=False),
                                   file_name=f"{run_key}_spectra.csv", mime="text/csv", on_click="ignore", key="dl_sc")
            st.download_button("Settings (JSON)", data=run.spec.to_json(indent=2), file_name=f"{run_key}_spec.json",
                               mime="application/json", on_click="ignore", key="dl_js")
            owner = resources.store() if source == "store" else resources.gallery()
            st.download_button("Whole run (.zip, importable)", data=lambda: owner.export_bytes(run_key),
                               file_name=f"learnmech_run_{run_key}.zip", mime="application/zip", on_click="ignore",
                               key="dl_zip")
        with cols[2]:
            st.markdown("**Open**")
            st.page_link("pages/explore.py", label="In Explore (same settings)", icon=":material/play_circle:",
                         query_params=spec_form.explore_params(run.spec))
            st.page_link("pages/spectra.py", label="Spectra and landscape", icon=":material/ssid_chart:",
                         query_params={"run": run_key})
            st.page_link("pages/compare.py", label="Compare", icon=":material/stacked_line_chart:",
                         query_params={"runs": [run_key]})
            if source == "store" and not hosted:
                with st.popover("Delete", icon=":material/delete:"):
                    st.warning("This removes the run from the store for good.")
                    if st.button("Delete this run", type="primary", key="delete"):
                        resources.store().delete(run_key)
                        resources.forget_run(run_key)
                        st.session_state.pop("run", None)
                        st.toast(f"Deleted run {run_key}")
                        st.rerun()
            elif source == "store":
                st.caption("Deleting is off in the hosted profile (the store is shared by all visitors).")

st.subheader("Import a run")
cap = current_caps().max_upload_mb
upload = st.file_uploader(f"A run file (.zip exported by learnmech, up to {cap:g} MB)", type=["zip"], key="import",
                          max_upload_size=max(1, math.ceil(cap)))
if upload is not None:
    marker = (upload.name, upload.size)
    if st.session_state.get("imported") != marker:
        try:
            payload = upload.getvalue()
            if len(payload) > cap * 1e6:
                raise ValueError(f"{upload.name} is {len(payload) / 1e6:.1f} MB; at most {cap:g} MB")
            key = resources.store().import_bytes(payload)
            st.session_state["imported"] = marker
            st.success(f"Imported run {key}.", icon=":material/check_circle:")
        except ValueError as err:
            ui.error(err, prefix=f"{upload.name} was not imported: ")
