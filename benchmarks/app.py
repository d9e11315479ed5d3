"""App timings: the home page in a real browser (what a visitor sees), and every page's server-side render.

    python -m benchmarks.app [--gallery PATH] [--repeat 3] [--browser-repeat 5] [--cold-repeat 3]
                             [--no-browser | --browser-only]

1. Browser (Playwright driving Debian's Chromium against `streamlit run app.py` on a free port): the time
   from navigation until every home card's figure is visible (its image loaded and laid out), on a fresh
   server (cold: the first visitor after start; median of `--cold-repeat` fresh servers) and then, once the
   server's processes are idle, in new browser contexts (warm: median of `--browser-repeat` visits), with a
   bare Streamlit page (a title and a line) visited in turn as the floor. The goal is <= 1.5 s cold and
   <= 1 s warm.
2. Server side, under Streamlit's AppTest: the app's start, then per page the first (cold: all caches
   cleared just before) and the median warm script time, and their ratio; then, on Explore, the time from
   pressing Run to the first chart drawn from the live run and to the finished run.

`--gallery` points at another gallery folder (default: the shipped gallery). Uses temporary run stores, so
nothing is left behind. The machine's load average is printed beside the numbers: on a shared 2-core
machine they vary several-fold. Never asserted by tests.

Measured (2 cores shared with other agents; --browser-repeat 7; "before" is 3aa1d2c measured with this file):

| run | load | cold median (3 fresh servers) | warm median | bare floor | server |
|---|---|---|---|---|---|
| before | 4.4 | 3.77 s (3.73-3.79) | 1.30 s | 0.83 s | asyncio + h11 |
| after | 3.2 | 1.48 s (1.40-1.68) | 1.52 s | 0.99 s | uvloop + httptools |
| after | 2.9 | 1.52 s (1.50-1.78) | 1.34 s | 0.82 s | uvloop + httptools |
| before | 4.6 | 4.42 s (4.09-4.54) | 1.27 s | 0.85 s | asyncio + h11 |
| after | 3.5 | 1.26 s (1.24-1.38) | 1.21 s | 0.83 s | asyncio + h11 |
| final | 0.6 | 1.18 s (1.11-1.19) | 1.08 s (1.02-1.11) | 0.60 s | uvloop + httptools |
| final | 0.4 | 1.08 s (1.03-1.17) | 1.04 s (1.01-1.11) | 0.55 s | uvloop + httptools |

"final": the shipped three-seed gallery (529 runs, 16 card images), 2026-12-05, nothing else running: cold
<= 1.5 s met; warm (a new visitor, nothing in the browser's cache, to a warm server) 1.04-1.08 s, over the 1 s
target by 0.04-0.08 s (home / floor = 1.8-1.9). The same visitor opening home again in the same browser (its
cache holds Streamlit's ~60 scripts) waits 0.42 s (0.40-0.44, 7 visits): the second row's run.
Tried after that: each card's question and image as one st.html element (16 elements fewer): warm 1.06 s
(1.02-1.14), floor 0.59 s, no gain; not kept.

Runs one after another move with the load (see the floor). Warm visits interleaved (11 to each server, after
it settled, load 5): before 1.27 s, after 1.22 s on the same server; the after code 1.26 s -> 1.12 s with
streamlit[performance], the bare floor 0.87 s -> 0.67 s.

Where the time went. Cold: the first script run imported torch and the rest of `learnmech_core` (app.py ->
resources -> learnmech_core.config -> the package -> compat -> data -> torch), the measurement modules and the
training worker's module before the home page drew anything (py-spy: 2.8 s + 1.3 s of the script thread
under load), and the training pool's forkserver started importing torch beside it. Now app.py draws the
home page from the gallery's files before anything heavy is imported (tests/test_app.py checks that in a
fresh interpreter), and a sidebar timer loads the rest a second later: loading it right after the page, in
the same run, still held back the page's messages (the GIL) by ~0.2 s. Warm: a bare Streamlit page
already costs 0.65-1.1 s here, mostly the browser waiting for ~60 script files from the Python server (6
connections at a time; the main thread is idle ~70% of that time); Streamlit's own `performance` extra
(uvloop, httptools) takes 0.2-0.25 s off it. The home page adds ~0.4 s over that floor: the browser renders
~110 elements (React, emotion, markdown parsing: ~0.6 s of main-thread script per visit) and decodes 16 SVG
images. In a mock-up (load 5, 11 visits each) the same cards with four elements each took 1.22 s, with two
(st.html + link) 1.16 s, and one st.html per direction without links or columns 1.08 s, floor 0.85 s: fewer
elements cannot close the gap, and the links are needed. So warm <= 1 s is below what this machine gives
under this load (it needs a floor of ~0.6 s); cold <= 1.5 s holds at load 3-5, not at load 8.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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


# every image in the main area: the home page has none but the cards' figures (img.card-figure; st.image before)
CARDS_VISIBLE = ("() => [...document.querySelectorAll('[data-testid=stMain] img')]"
                 ".filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0).length")


BARE_APP = "import streamlit as st\nst.title('A bare Streamlit page')\nst.write('Nothing else.')\n"


def start_server(home: str, script: str = "app.py") -> tuple[subprocess.Popen, str]:
    """`streamlit run <script>` on a free localhost port with its own run store; returns (process, url) once healthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, "LEARNMECH_HOME": home}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("streamlit did not become healthy in 180 s")


def browser_home(expected: int, repeat: int, cold_repeat: int = 3) -> tuple[list[float], ...]:
    """(cold, warm, floor, returning) seconds from navigation until `expected` card figures are visible in Chromium.

    cold: the first visit to a fresh server, `cold_repeat` times (a new server each); warm: later visits to the
    last of them, each in a new browser context (a classmate opening the link: nothing in the browser's cache);
    floor: a bare Streamlit page (a title and a line) on its own server, visited in turn with the warm visits:
    what any Streamlit page costs in this browser on this machine now; returning: the same visitor opening the
    home page again in the same browser context (its cache holds Streamlit's scripts), visited in turn too.
    """
    from playwright.sync_api import sync_playwright

    from learnmech_core.plots.render import FLAGS, chromium_path

    bare = Path(tempfile.mkdtemp(prefix="learnmech_bench_bare_")) / "bare.py"
    bare.write_text(BARE_APP)
    floor_proc, floor_url = start_server(tempfile.mkdtemp(prefix="learnmech_bench_browser_"), str(bare))
    servers = [floor_proc]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium_path()), args=FLAGS)

            def visit(address: str, ready: str, times: int = 1) -> float:
                """Seconds of the last of `times` visits in one new browser context (later ones: cache kept)."""
                context = browser.new_context(viewport={"width": 1440, "height": 1000})
                page = context.new_page()
                for _ in range(times):
                    page.goto(address, wait_until="commit")
                    page.wait_for_function(ready, timeout=120_000, polling="raf")
                    seconds = page.evaluate("() => performance.now()") / 1000.0  # since this navigation started
                context.close()
                return seconds

            home_ready = f"() => ({CARDS_VISIBLE})() >= {expected}"
            bare_ready = "() => !!document.querySelector('h1')"
            visit(floor_url, bare_ready)  # the bare server's own first visit, not counted
            cold = []
            for _ in range(max(cold_repeat, 1)):
                if len(servers) > 1:  # the previous fresh server: only the last one stays for the warm visits
                    os.killpg(servers[-1].pid, signal.SIGTERM)
                    servers.pop().wait(15)
                proc, url = start_server(tempfile.mkdtemp(prefix="learnmech_bench_browser_"))
                servers.append(proc)
                cold.append(visit(url, home_ready))
            settle(proc.pid)  # the fresh server loads torch and starts its training workers after the first page
            warm, floor, returning = [], [], []
            for _ in range(max(repeat, 1)):
                warm.append(visit(url, home_ready))
                floor.append(visit(floor_url, bare_ready))
                returning.append(visit(url, home_ready, times=2))
            browser.close()
    finally:
        for process in servers:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
    return cold, warm, floor, returning


def cpu_seconds(group: int) -> float:
    """CPU time used so far by the processes of a process group (the server and its training workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def settle(group: int, busy: float = 0.1, timeout: float = 120.0) -> None:
    """Wait until the server's processes use less than `busy` of a core (over 1 s), so warm visits measure a
    warm server rather than one still loading torch in its workers."""
    deadline = time.time() + timeout
    before = cpu_seconds(group)
    while time.time() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(group)
        if now - before < busy:
            return
        before = now


def server_flavour() -> str:
    """The event loop and HTTP parser of Streamlit's server here (`streamlit[performance]` brings the fast ones)."""
    fast = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name) is not None]
    return " + ".join(fast) if fast else "asyncio + h11 (no streamlit[performance])"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", help="gallery folder (default: the shipped gallery)")
    parser.add_argument("--repeat", type=int, default=3, help="warm renders per page (median reported)")
    parser.add_argument("--browser-repeat", type=int, default=5, help="warm home visits in the browser")
    parser.add_argument("--cold-repeat", type=int, default=3, help="cold home visits, each to a fresh server")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser timings")
    parser.add_argument("--browser-only", action="store_true", help="only the browser timings")
    args = parser.parse_args()
    from learnmech_core.store import gallery_root

    if not args.no_browser:
        cards = json.loads((Path(args.gallery or gallery_root()) / "cards" / "index.json").read_text())
        load = os.getloadavg()[0]
        cold, warm, floor, returning = browser_home(len(cards), args.browser_repeat, args.cold_repeat)
        print(f"browser, home until all {len(cards)} card figures are visible (Chromium, 1440 px; load average "
              f"{load:.1f} on {os.cpu_count()} cores; server on {server_flavour()}):")
        print(f"  cold (first visit, fresh server) median {statistics.median(cold):.2f} s "
              f"({', '.join(f'{c:.2f}' for c in cold)}); warm median {statistics.median(warm):.2f} s "
              f"(min {min(warm):.2f}, max {max(warm):.2f}, {len(warm)} visits)")
        print(f"  floor: a bare Streamlit page (title and one line) until its title shows, visited in turn: median "
              f"{statistics.median(floor):.2f} s; home warm / floor = "
              f"{statistics.median(warm) / statistics.median(floor):.2f}")
        print(f"  returning visitor (the same browser opens home again, its cache kept): median "
              f"{statistics.median(returning):.2f} s (min {min(returning):.2f}, max {max(returning):.2f})")
        if args.gallery:
            print("  (the browser visits use the server's own gallery, learnmech_core/gallery)")
    if args.browser_only:
        return 0
    os.environ["LEARNMECH_HOME"] = tempfile.mkdtemp(prefix="learnmech_bench_")
    import learnmech_app.cards as cards_module
    import learnmech_app.resources as res

    gallery = Path(args.gallery) if args.gallery else gallery_root()
    res.gallery_root = cards_module.gallery_root = lambda: gallery
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
        cold = timed_run(at, page)
        warm = statistics.median(timed_run(at, page) for _ in range(max(args.repeat, 1)))
        results[page] = (cold, warm)
        print(f"{page:24s} {cold:8.3f} {warm:8.3f} {cold / warm if warm > 0 else float('nan'):10.1f}")
    home_warm = results["pages/home.py"][1]
    verdict = "under" if home_warm < 1.0 else "NOT under"
    print(f"home page (warm, server side) renders in {home_warm:.3f} s: {verdict} 1 s"
          + ("" if runs else " (no gallery: cards say 'not in the gallery yet')"))
    first, total, live = live_chart_delay()
    print(f"Explore, tiny run ({TINY['optim.steps']} steps): Run -> first live chart {first:.2f} s, "
          f"-> finished {total:.2f} s ({live} live redraws); first chart at {first / total:.0%} of the run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
