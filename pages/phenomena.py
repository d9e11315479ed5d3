"""Phenomena: one claim at a time, its prediction, the measured verdict, rerun on your own grid."""

import streamlit as st

from learnmech_app import class_mode, live, spec_form, ui
from learnmech_app import phenomena_view as pv
from learnmech_app import verdict_view as vv
from learnmech_app.datasets import dataset_options, uploads
from learnmech_app.urlstate import choice
from learnmech_core.config import current_caps
from learnmech_core.phenomena import DIRECTIONS, SIZES
from learnmech_core.phenomena.runner import tag

ui.header(
    "Phenomena: does the prediction hold?",
    "Each phenomenon is a claim from the learning-mechanics literature turned into a number that can be measured: "
    "the sentence of its source that is tested, each clause of the claim with the criterion fixed before the runs, "
    "and a verdict computed from training runs on three seeds (it holds when every clause holds together on at "
    "least 2 of the 3). "
    "Results appear at once when the runs are stored (the gallery holds every phenomenon at the *quick* size on "
    "seeds 0, 1 and 2); otherwise press "
    "**Run** to train them here. Change the architectures and datasets to test whether the behaviour is universal, "
    "and switch the overlay between raw and normalised axes to see the curves fall onto one another.",
)
present = ui.presentation()
names = pv.safe_names()
if not names:
    st.info("No phenomena are registered yet; they appear here as they are written.", icon=":material/info:")
    st.stop()
phs = {n: pv.safe_get(n) for n in names}
order = [n for d in DIRECTIONS for n in names if phs[n] is not None and phs[n].direction == d]
name = choice(st.selectbox, "Phenomenon", order, key="phenomenon",
              format_func=lambda n: f"{DIRECTIONS[phs[n].direction]} · {ui.plain(phs[n].title)}")
ph = phs[name]
if st.session_state.get("_ph_last") not in (None, name):  # a new phenomenon starts on its own grid
    for k in ("archs", "datasets"):
        st.session_state.pop(k, None)
st.session_state["_ph_last"] = name

st.subheader(ph.title)
left, right = st.columns([3, 2])
left.markdown(f"**Prediction.** {ph.prediction}")
left.markdown(f"**What is measured.** {ph.measures}")
right.markdown(f"**Direction.** {DIRECTIONS[ph.direction]}")
right.markdown("**Sources.**\n" + "\n".join(f"- {s}" for s in ph.sources))
with left:
    vv.source(ph)

sizes = [s for s in SIZES if s != "full" or current_caps().profile != "hosted"]
with ui.controls("Runs"):
    cols = st.columns([3, 3, 2, 1.6, 1.6])
    archs = cols[0].multiselect("Architectures", list(ph.allowed_archs or ph.archs), default=list(ph.archs),
                                key="archs", bind="query-params")
    data_options = list(ph.allowed_datasets or ph.datasets)
    labels = dataset_options()
    # the user's own data, where the phenomenon can use data of its task
    data_options += [n for n, meta in uploads().items()
                     if meta.get("task") in ph.upload_tasks and n not in data_options]
    datasets = choice(cols[1].multiselect, "Datasets", data_options, default=list(ph.datasets), key="datasets",
                      format_func=lambda n: labels.get(n, n),
                      help="Your own uploaded data appears here when this phenomenon can use it "
                           f"({' or '.join(ph.upload_tasks)} data)." if ph.upload_tasks else
                           "This phenomenon builds its own dataset, so uploaded data is not offered.")
    size = cols[2].segmented_control("Size", sizes, default="quick", key="size", bind="query-params",
                                     help="tiny: seconds; quick: about a minute (the gallery); full: closer to the "
                                          "papers, for the command line or a GPU.") or "quick"
    normalised = cols[3].toggle("Normalise", value=True, key="normalised", bind="query-params",
                                help=ph.normalisation or "Axes that make different systems comparable.")
    seeds = sorted(cols[4].multiselect("Seeds", [0, 1, 2, 3, 4], default=[0, 1, 2], key="seeds", bind="query-params",
                                       help="Independent replicates of the whole grid (new initialisation and data "
                                            "draw). The gallery holds seeds 0, 1 and 2.")) or [0]

try:
    specs, res = pv.result(ph, size, archs, datasets, seeds)
except ValueError as err:
    ui.error(err)
    st.stop()
job = live.session_job("phenomena")
mine = job is not None and [s.key() for s in job.specs] == [s.key() for s in specs]

with st.container(horizontal=True, vertical_alignment="center"):
    if res is None and st.button("Run", type="primary", icon=":material/play_arrow:", key="run",
                                 disabled=job is not None and not job.done):
        job, mine = live.start_job("phenomena", specs, tags=tag(name, size)), True
    st.caption(f"{len(specs)} runs at size {size} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
    ui.share_link()
    if specs:
        st.page_link("pages/explore.py", label="Rerun one of them in Explore", icon=":material/play_circle:",
                     query_params=spec_form.explore_params(specs[0], archs, datasets))


def render(job):
    live.progress(job, stop_key="ph_stop")
    live.training_charts(live.runs_of(job)[-2:], "phenomena_live", presentation=present)


if job is not None and not job.done and not mine:
    st.info("Another phenomenon is training in this session; its progress is in the sidebar.")
elif res is None and mine:
    live.show_job("phenomena", render)
    if job.done:
        st.warning("Some runs did not finish (stopped or failed), so there is no verdict yet.")
elif res is None:
    st.info(f"Not in the gallery or the store yet: press **Run** to train {len(specs)} runs.", icon=":material/info:")

if res is not None and class_mode.hold(name, res.verdict):  # class mode: the class guesses before the reveal
    st.stop()
if res is not None:
    if res.verdict_error:
        ui.error(res.verdict_error)
    vv.verdict(ph, res, present)
    figs, problem = pv.result_figures(ph, res, normalised, present)
    if problem:
        ui.error(problem)
    if figs and len(res.seed_runs) > 1:
        st.caption(f"Figures show seed {min(res.seed_runs)}; the verdict above judges every seed.")
    long_titles = any(len(str(f.layout.title.text or "")) > 55 for f in figs)
    per_row = 1 if present or len(figs) == 1 or long_titles else 2
    for i in range(0, len(figs), per_row):
        for col, (j, fig) in zip(st.columns(per_row), list(enumerate(figs))[i:i + per_row], strict=False):
            with col:
                ui.show_figure(fig, key=f"ph_{name}_{j}", name=f"{name}_{j}")
    vv.per_run(ph, res)
    src = sorted(set(res.sources))
    st.caption(f"Runs read from: {', '.join(src)}.")
    st.page_link("pages/compare.py", label="Compare these runs", icon=":material/stacked_line_chart:",
                 query_params={"runs": [r.spec.key() for r in res.runs]})
vv.tried(ph)
