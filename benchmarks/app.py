"""App timings under Streamlit's AppTest: each page's render time, and Run -> first live chart.

    python -m benchmarks.app [--gallery PATH] [--repeat 3]

Prints the app's start (imports, AppTest's component scan, the first run), then per page the first
(cold: all caches cleared just before) and the median warm render time, and their ratio; then, on Explore, the time from pressing Run to the first chart drawn from the live run and to
the finished run. The home page is expected to render in under 1 s (warm) with the gallery present;
`--gallery` points at another gallery folder (default: the shipped gallery). Uses a temporary run store, so
nothing is left behind. Numbers are wall times on this machine; never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PAGES = ["pages/home.py", "pages/phenomena.py", "pages/explore.py", "pages/your_data.py", "pages/spectra.py",
         "pages/compare.py", "pages/runs.py"]
TINY = {"model.width": "8", "model.depth": "1", "data.name": "moons", "data.n_train": "64", "data.n_test": "16",
        "optim.steps": "200", "every": "10"}


def app():
    """One AppTest for all measurements (a new AppTest rescans installed packages for components: seconds)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    return at


def timed_run(at, page: str, query: dict | None = None) -> float:
    at.switch_page(page)
    at.query_params.clear()
    if query:
        at.query_params.update(query)
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page}: {[e.value for e in at.exception]}")
    return seconds


def live_chart_delay() -> tuple[float, float, int]:
    """(seconds from Run to the first live chart with data, seconds to the finished run, charts drawn live)."""
    at = app()
    timed_run(at, "pages/explore.py", TINY)
    at.button(key="run").click()
    started = time.perf_counter()
    at.run()
    first, live = None, 0
    while True:
        job = at.session_state["job:explore"]
        charts = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
        drawn = any(c["data"] and len(c["data"][0].get("x", [])) > 0 for c in charts)
        if drawn and first is None:
            first = time.perf_counter() - started
        if drawn and not job.done:
            live += 1
        if job.done:
            break
        time.sleep(0.05)
        at.run()  # the browser's fragment timer does this every POLL_S
    total = time.perf_counter() - started
    return (first if first is not None else float("nan")), total, live


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", help="gallery folder (default: the shipped gallery)")
    parser.add_argument("--repeat", type=int, default=3, help="warm renders per page (median reported)")
    args = parser.parse_args()
    os.environ["LEARNMECH_HOME"] = tempfile.mkdtemp(prefix="learnmech_bench_")
    import learnmech_app.phenomena_view as pv
    import learnmech_app.resources as res
    from learnmech_core.store import gallery_root

    gallery = Path(args.gallery) if args.gallery else gallery_root()
    res.gallery_root = pv.gallery_root = lambda: gallery
    runs = list((gallery / "runs").glob("*")) if (gallery / "runs").is_dir() else []
    import torch

    threads = res.torch_threads_for_app()  # as the server sets it (app.py: resources.configure_process)
    torch.set_num_threads(threads)
    warm = res.warm_up()  # the server does this in a background thread at start
    print(f"server warm-up (torch's one-time costs, in the background at start): {warm:.2f} s")
    print(f"gallery: {gallery} ({len(runs)} runs)   store: {os.environ['LEARNMECH_HOME']}   "
          f"torch threads: {torch.get_num_threads()}")
    print(f"{'page':24s} {'cold s':>8s} {'warm s':>8s} {'cold/warm':>10s}")
    results = {}
    started = time.perf_counter()
    at = app()  # imports, component scan, the entry script's first run
    print(f"{'(app start, first run)':24s} {time.perf_counter() - started:8.3f}")
    import streamlit as st

    for page in PAGES:
        st.cache_data.clear()  # cold: this page's caches (gallery cards, runs, figures) empty
        st.cache_resource.clear()
        pv._BUILDERS.clear()
        cold = timed_run(at, page)
        warm = statistics.median(timed_run(at, page) for _ in range(max(args.repeat, 1)))
        results[page] = (cold, warm)
        print(f"{page:24s} {cold:8.3f} {warm:8.3f} {cold / warm if warm > 0 else float('nan'):10.1f}")
    st.cache_data.clear()
    st.cache_resource.clear()
    pv._BUILDERS.clear()
    started = time.perf_counter()
    cards = pv.warm_cards()  # what the server's warm-up thread does at start
    warmed = time.perf_counter() - started
    after_warm_up = timed_run(at, "pages/home.py")
    print(f"home after the server's background card warm-up ({cards} cards, {warmed:.2f} s at start): "
          f"{after_warm_up:.3f} s")
    home_warm = results["pages/home.py"][1]
    verdict = "under" if home_warm < 1.0 else "NOT under"
    print(f"home page (warm) renders in {home_warm:.3f} s: {verdict} 1 s"
          + ("" if runs else " (no gallery: cards say 'not in the gallery yet')"))
    first, total, live = live_chart_delay()
    print(f"Explore, tiny run ({TINY['optim.steps']} steps): Run -> first live chart {first:.2f} s, "
          f"-> finished {total:.2f} s ({live} live redraws); first chart at {first / total:.0%} of the run")
    for thread in list(pv._BUILDERS.values()):  # let background card builders finish before exit
        thread.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
