"""Your own data: upload a CSV or .npz, validate it, and use it as a dataset in Explore and in the phenomena."""

import math

import numpy as np
import pandas as pd
import streamlit as st

from learnmech_app import datasets as ds
from learnmech_app import resources, ui
from learnmech_core.config import current_caps

ui.header(
    "Your own data: do the same behaviours show up on it?",
    "Upload a table of numbers and train on it like any built-in dataset, or test a phenomenon's prediction on it "
    "(those that can use data of its kind offer it in their dataset list). A CSV needs numeric feature columns "
    "and one label (classification) or target (regression) column; an `.npz` file needs arrays `X` (rows × "
    "features) and `y`. The file is checked (size, numbers only, no missing values, at least two classes) and "
    "any problem is named. Your data stays in this browser session unless you save it; runs trained on it are "
    "stored like any other run.",
)
caps = current_caps()


def use(parsed) -> None:
    """Register parsed data as a dataset of this session (Explore and the phenomena then offer it)."""
    try:
        name = ds.register(parsed)
        st.session_state.setdefault("upload_arrays", {})[name] = parsed
        st.toast(f"Added {parsed.summary()['label']} as {name}")
    except ValueError as err:
        ui.error(err, prefix="The data cannot be used: ")


def example_table() -> pd.DataFrame:
    """Two interleaved half circles with noise, labels 0/1 (a fixed seed: the same table every time)."""
    rng = np.random.default_rng(0)
    label = np.arange(200) % 2
    t = rng.uniform(0.0, np.pi, 200)
    x1 = np.where(label, 1.0 - np.cos(t), np.cos(t)) + 0.1 * rng.normal(size=200)
    x2 = np.where(label, 0.5 - np.sin(t), np.sin(t)) + 0.1 * rng.normal(size=200)
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4), "label": label})

upload = st.file_uploader(f"CSV or .npz file (up to {caps.max_upload_mb:g} MB)", type=["csv", "npz"], key="upload",
                          max_upload_size=max(1, math.ceil(caps.max_upload_mb)))
parsed = None
if upload is not None:
    try:
        payload = upload.getvalue()
        if upload.name.lower().endswith(".npz"):
            task = st.segmented_control("Task", ["auto", "classification", "regression"], default="auto", key="task")
            parsed = ds.parse_npz(payload, None if task in (None, "auto") else task, upload.name)
        else:
            table = ds.read_csv(payload, upload.name)
            st.dataframe(table.head(20), height=220)
            cols = st.columns(3)
            guess = next((c for c in table.columns if str(c).lower() in ("label", "target", "y", "class")),
                         table.columns[-1])
            target = cols[0].selectbox("Label or target column", list(table.columns),
                                       index=list(table.columns).index(guess), key="target")
            task = cols[1].segmented_control("Task", ["classification", "regression"], key="csv_task",
                                             default=ds.guess_task(table[target])) or ds.guess_task(table[target])
            numeric = [c for c in table.columns if c != target]
            features = cols[2].multiselect("Feature columns", numeric, default=numeric, key="features")
            parsed = ds.from_table(table, target, features, task, upload.name)
    except ValueError as err:
        ui.error(err, prefix="The file cannot be used: ")
        parsed = None

if parsed is not None:
    info = parsed.summary()
    st.success(f"{info['label']}: {info['rows']} rows × {info['features']} features, {info['task']}"
               + (f" with {info['classes']} classes" if info["classes"] else "") + ".", icon=":material/check_circle:")
    if st.button("Use this data", type="primary", key="use", icon=":material/add_circle:"):
        use(parsed)

mine = ds.uploads()
st.subheader("Your datasets")
if not mine:
    st.caption("None yet. Upload a file above, or start from a small example table:")
    if st.button("Use an example: two interleaved moons (200 rows, 2 features)", key="use_example",
                 icon=":material/dataset:"):
        use(ds.from_table(example_table(), "label", ["x1", "x2"], "classification", "example: two moons"))
        st.rerun()
for name, meta in mine.items():
    with st.container(border=True):
        cols = st.columns([4, 2, 2, 2])
        classes = f", {meta.get('classes')} classes" if meta.get("classes") else ""
        cols[0].markdown(f"**{meta.get('label', name)}** · `{name}`  \n{meta.get('rows')} rows × "
                         f"{meta.get('features')} features, {meta.get('task')}{classes}")
        rows = int(meta.get("rows") or 8)
        n_train = max(int(rows * 0.75), 1)
        params = {"data.name": [name], "model.arch": ["mlp"], "data.n_train": str(n_train),
                  "data.n_test": str(rows - n_train)}
        if meta.get("task") == "regression":
            params["optim.loss"] = "mse"
        cols[1].page_link("pages/explore.py", label="Train on it in Explore", icon=":material/play_circle:",
                          query_params=params)
        phenomenon = "edge_of_stability" if meta.get("task") == "classification" else "catapult"
        cols[2].page_link("pages/phenomena.py", label="Test a phenomenon on it", icon=":material/science:",
                          query_params={"phenomenon": phenomenon, "archs": ["mlp"], "datasets": [name]})
        arrays = st.session_state.get("upload_arrays", {}).get(name)
        if meta.get("saved"):
            cols[3].caption("saved for later sessions")
        elif resources.hosted():
            cols[3].caption("kept for this session only (hosted)")
        elif arrays is not None and cols[3].button("Save for later sessions", key=f"save_{name}"):
            try:
                path = ds.save(name, arrays)
                st.toast(f"Saved to {path}")
                st.rerun()
            except (ValueError, OSError) as err:
                ui.error(err)
