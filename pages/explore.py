"""Explore: build runs from widgets, train them live (the worker pool), watch the curves overlay; steer η."""

import streamlit as st

from learnmech_app import live, resources, spec_form, steer, ui
from learnmech_app.urlstate import choice
from learnmech_core.plots import runs as prun

ui.header(
    "Explore: how does a network train?",
    "Choose an architecture, a dataset and an optimiser, pick what to measure, and press **Run**. Curves are "
    "drawn while the model trains: the loss, the accuracy and, when you record it, the *sharpness* (the largest "
    "Hessian eigenvalue) against the 2/η line where gradient descent becomes unstable. Choose several "
    "architectures or datasets to train them as a set: one colour per architecture, one dash per dataset. "
    "Finished runs go to the store, so this page's link shows them again at once.",
)
present = ui.presentation()
with ui.controls("Settings"):
    with st.container(horizontal=True, vertical_alignment="bottom"):  # 2-D datasets: the decision boundary
        noise = st.slider("Data noise (2-D datasets)", 0.0, 1.0, 0.0, 0.05, key="data.noise", bind="query-params",
                          width=260, help="Standard deviation of Gaussian noise added to the inputs of moons, "
                                          "circles, spirals and Gaussian mixtures, as in TensorFlow Playground.")
        flat = st.toggle("Gaussian mixture in 2-D", key="gm2d", bind="query-params",
                         help="Draw the Gaussian mixture in the plane (data.dim = 2), so its decision boundary shows.")
    form = spec_form.form()
specs, problems = live.with_data_noise(form.specs, noise, flat)
refusals = list(dict.fromkeys(problems + [m for m in (resources.refuse(s) for s in specs) if m]))
for message in refusals + form.errors:
    ui.error(message)
for note in form.notes:
    st.warning(note, icon=":material/warning:")
if form.skipped:
    st.warning("Skipped combinations that cannot run: " + "; ".join(form.skipped), icon=":material/warning:")
overrides = {k: v for k, v in form.overrides.items() if k != "data.noise"}  # the slider shows the noise
if overrides:
    st.caption("Also set by the link: " + ", ".join(f"`{k}={v}`" for k, v in overrides.items()))

with st.container(horizontal=True, vertical_alignment="center"):
    x = choice(st.segmented_control, "x axis", list(prun.X_AXES), default="step", key="x",
               format_func=prun.X_SHORT.get)
    smoothing = st.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="smooth", bind="query-params", width=200)
    norm = st.toggle("Sharpness / (2/η)", key="norm", bind="query-params",
                     help="Divide sharpness by its stability threshold (2/η for GD), so every learning rate meets 1.")
extra = choice(st.multiselect, "More charts", [c for c in prun.METRIC_LABELS if c not in ("loss", "sharpness")],
                       key="charts", format_func=prun.metric_label,
                       help="Any other recorded quantity (those not recorded show an empty chart).")

extra = list(dict.fromkeys(list(extra) + spec_form.measured_metrics(form.measure)))  # what is recorded is drawn
job = live.session_job("explore")
busy = job is not None and not job.done
cols = st.columns([1, 2, 5], vertical_alignment="center")
clicked = cols[0].button("Run", type="primary", icon=":material/play_arrow:", key="run",
                         disabled=bool(form.errors or refusals) or busy or not specs)
cols[2].caption(spec_form.describe_set(specs))
with cols[1]:
    ui.share_link()
if clicked and specs:
    job = live.start_job("explore", specs)


def render(job):
    live.progress(job, stop_key="explore_stop")
    steer.controls(job, "explore")
    runs = live.runs_of(job)
    live.training_charts(runs, "explore", x or "step", smoothing, extra, present, norm,
                         boundary=live.boundary_of(job, present))
    if job.done:
        ui.show_table(live.state_table(job), "explore_runs", hide_index=True)
        _links([s.key for s in job.snapshot() if s.run is not None and s.state != "stopped"])


def _links(keys):
    if keys:
        with st.container(horizontal=True):
            st.page_link("pages/compare.py", label="Compare these runs", icon=":material/stacked_line_chart:",
                         query_params={"runs": keys})
            st.page_link("pages/spectra.py", label="Spectra of the first run", icon=":material/ssid_chart:",
                         query_params={"run": keys[0]})
            st.page_link("pages/runs.py", label="Download them", icon=":material/download:",
                         query_params={"run": keys[0]})


if job is not None and (busy or [s.key() for s in job.specs] == [s.key() for s in specs]):
    if busy and [s.key() for s in job.specs] != [s.key() for s in specs]:
        st.info("Showing the set that is training; your changed settings run when it has finished.")
    live.show_job("explore", render)
elif specs:
    stored = [r for r in (resources.load_run(s.key())[0] for s in specs) if r is not None]
    if stored:
        st.success(f"{len(stored)} of {len(specs)} runs with these settings are already stored: shown at once."
                   + ("" if len(stored) == len(specs) else " Press Run to train the rest."), icon=":material/bolt:")
        live.training_charts(stored, "explore", x or "step", smoothing, extra, present, norm,
                             boundary=live.finished_boundary(stored, present))
        _links([r.spec.key() for r in stored])
    else:
        st.info("Press **Run** to train. Small settings (width 32, 200 steps) finish in seconds.",
                icon=":material/play_arrow:")
