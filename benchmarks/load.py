"""Classroom load: N visitors each start a distinct run on Explore while new visitors open the home page.

    python -m benchmarks.load [--sessions 20] [--trainer process,thread] [--visitors 5] [--browser]

For each trainer (`process`: runs train in the worker pool, the design of issue 12; `thread`: runs
train on threads inside the Streamlit server, as before) it starts `streamlit run app.py` in the
hosted profile with an empty store, waits until the home page is fully drawn once, then

- opens Explore in N sessions with distinct seeds (`seed=i&data.seed=i`, the settings pinned in the
  query string: tanh MLP 128x2 on digits, GD lr 0.05, 300 steps, sharpness every 10) and presses Run
  in all of them at once;
- a few seconds into the load, opens the home page as a new visitor, `--visitors` times one after
  another, and times each until its script finished (the cards are static images, in the page once it
  has);
- waits until every session shows "finished" (or `--timeout`), and samples the memory of the server
  and all its descendants (worker processes, the forkserver) every 0.5 s.

It prints runs completed, exceptions shown, the new visitor's wait for the home page (median and
worst), Run -> first live chart (median and worst), Run -> finished (median and worst, and the last),
and the peak memory of server + workers as PSS (proportional set size from /proc/PID/smaps_rollup:
pages shared between processes, e.g. torch's libraries after a fork, are counted once in total) next
to the sum of RSS (which counts shared pages in every process).

Clients: the sessions speak Streamlit's own websocket protocol (`benchmarks/ws_client.py`), all in one
asyncio loop of this process, so they cost the server's CPUs little (this process's own CPU time is
printed). They leave out what a browser adds: drawing the charts, fetching the JavaScript bundle and
media, echoing widget values. `--browser [FOLDER]` adds one Chromium visitor (Playwright), after the
websocket visitors and while the runs still train, that times the home page until every card's figure
is visible in the page (and saves a screenshot of it to FOLDER).

The machine is shared: the load average of the last minute is printed before and after each trainer,
so the numbers can be read against it. Nothing is asserted; the numbers below are from this script.

`--trainer before` is the design before issue 12 in one switch: runs train on threads of the server
process, with Streamlit's defaults that .streamlit/config.toml now turns off (a full gc.collect(2)
after every script run, the file watcher). `process` is the current design (worker processes).

Measured on 2 cores shared with other agents (their load average at the start of each round shown),
hosted profile, 20 concurrent sessions, 300-step runs; `python -m benchmarks.load --trainer
before,process,before,process --browser`, interleaved rounds:

    round    load  done  home (ws) med/worst  1st chart med/worst  last run  PSS (RSS sum)  Chromium home
    before   1.6   20/20   5.71 s / 22.1 s      46.9 s / 47.0 s       51 s    618 MB (625)       5.4 s
    process  1.7   20/20   0.12 s /  0.36 s     11.9 s / 17.0 s       18 s   1182 MB (1744)      4.0 s
    before   2.9   20/20   6.62 s / 20.0 s      49.5 s / 97.5 s      101 s    617 MB (624)      13.6 s
    process  3.2   20/20   0.13 s /  0.14 s     18.0 s / 28.7 s       30 s   1141 MB (1744)      6.1 s

Re-measured after the home cards became static images (`gallery build` draws them; the Chromium visitor
now waits until every card image is loaded and laid out), `--trainer before,process --browser`, 2026-12-05,
load average 0.3-1.6 at the start (nothing else running):

    round    load  done  home (ws) med/worst  1st chart med/worst  last run  PSS (RSS sum)  Chromium home
    before   0.3   20/20   4.26 s / 23.2 s      45.3 s / 47.6 s       51 s    596 MB (603)       3.11 s
    process  1.4   20/20   0.04 s /  0.04 s     10.8 s / 16.9 s       18 s   1068 MB (1643)      1.94 s

0 exceptions in every round. "home (ws)" is the new visitor's wait until the home page's script has
finished with every card drawn, over the websocket; "Chromium home" adds the browser fetching the
JavaScript and drawing the 16 card figures, on the same 2 busy cores (the cards are being made static
thumbnails in another change). Where the time went before (py-spy on the server under this load): a
full garbage collection after every script run, i.e. every poll of every live chart (92% of the
samples holding the GIL; one gc.collect(2) took 0.54 s here), the file watcher re-reading the module
list after runs (19% of all samples), and training holding the GIL between page renders. Memory: the
workers add ~520-560 MB PSS (forkserver + 2 workers sharing torch's pages), within the 1.5 GB target.
With the GC and the watcher off, threads in the server (`--trainer thread`) were close in run
throughput on this small model (last run 42-43 s vs 43-56 s for processes at load 6-10) but the
home page's worst wait was 0.45-1.4 s against 0.17-0.28 s with processes. On the code before this
change (commit 3310bdf, load average 10-12) the same load gave: home 9.2 s median / 11.0 s worst,
first chart 86 s median, last run 272 s, PSS 618 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.ws_client import Session

ROOT = Path(__file__).resolve().parent.parent

QUERY = ("model.arch=mlp&model.width=128&model.depth=2&model.activation=tanh&data.name=digits&data.n_train=512"
         "&data.n_test=256&optim.name=gd&optim.lr=0.05&optim.steps={steps}&measure=sharpness&every=10"
         "&seed={seed}&data.seed={seed}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# "before": training on threads of the server, with Streamlit's defaults this repository's config now
# turns off (a full garbage collection after every script run; the file watcher)
BEFORE = ["--runner.postScriptGC", "true", "--server.fileWatcherType", "auto"]


def start_server(trainer: str, profile: str, home: Path) -> tuple[subprocess.Popen, str]:
    """`trainer`: process (worker processes), process-nice<N> (workers at nice N instead of 10), thread
    (threads of the server), or before (thread with Streamlit's default GC and file watcher)."""
    port = free_port()
    mode, _, nice = trainer.partition("-nice")
    extra = BEFORE if mode == "before" else []
    mode = "thread" if mode == "before" else mode
    env = {**os.environ, "LEARNMECH_HOME": str(home), "LEARNMECH_PROFILE": profile, "LEARNMECH_TRAINER": mode}
    if nice:
        env["LEARNMECH_WORKER_NICE"] = nice
    with open(home / "server.log", "w") as log:  # the child keeps its own copy of the file
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *extra],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("streamlit did not become healthy in 180 s")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and only its own children
        proc.wait(20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# --- memory ---------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """pid and every process below it (children of children: the forkserver's workers too)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def memory_mb(pid: int) -> tuple[float, float, int]:
    """(PSS, RSS, processes) of a process tree, in MB."""
    pss = rss = 0
    pids = descendants(pid)
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss / 1024, rss / 1024, len(pids)


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop = pid, every, (0.0, 0.0, 0), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            sample = memory_mb(self.pid)
            if sample[0] > self.peak[0]:
                self.peak = sample
            self.stop.wait(self.every)


# --- sessions -------------------------------------------------------------------------------------


def home_done(s: Session) -> bool:
    return not s.running  # the cards are static images: drawn once the script has finished


async def visit_home(url: str, timeout: float) -> float:
    """A new visitor: seconds until the home page's script finished with every card's figure drawn."""
    started = time.perf_counter()
    async with Session(url, page="") as s:
        await s.open(timeout)
        while not home_done(s):
            if time.perf_counter() - started > timeout:
                return float("inf")
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def explore_session(url: str, seed: int, steps: int, timeout: float, out: dict, go: asyncio.Event) -> None:
    rec = out.setdefault(seed, {"first_chart": float("nan"), "finished": float("nan"), "state": "not started",
                                "exceptions": []})
    try:
        async with Session(url, page="explore", query=QUERY.format(seed=seed, steps=steps)) as s:
            await s.open(timeout)
            rec["opened"] = True
            await go.wait()
            started = time.perf_counter()
            await s.click("run")
            rec["state"] = "clicked"
            while time.perf_counter() - started < timeout:
                await asyncio.sleep(0.05)
                now = time.perf_counter() - started
                if rec["first_chart"] != rec["first_chart"] and s.count("plotly_chart"):
                    rec["first_chart"] = now
                texts = s.texts("progress")
                if any("queue" in t for t in texts):
                    rec["queued"] = True
                if any(t.startswith("finished") for t in texts) and not s.running:
                    rec["finished"], rec["state"] = now, "finished"
                    break
            else:
                rec["state"] = f"timed out ({s.texts('progress')})"
            rec["exceptions"] = list(s.exceptions)
    except Exception as err:
        rec["state"] = f"client error: {type(err).__name__}: {err}"


async def scenario(url: str, sessions: int, visitors: int, steps: int, timeout: float, delay: float,
                   browser: str = "") -> dict:
    out: dict = {}
    go = asyncio.Event()
    tasks = [asyncio.create_task(explore_session(url, seed, steps, timeout, out, go)) for seed in range(sessions)]
    while sum(bool(r.get("opened")) for r in out.values()) < sessions:
        await asyncio.sleep(0.1)  # every session's page is open (the Run button is there)
        if all(t.done() for t in tasks):
            break
    await asyncio.sleep(1.0)
    go.set()
    await asyncio.sleep(delay)
    waits = [await visit_home(url, timeout) for _ in range(visitors)]
    seen = None
    if browser:  # one Chromium visitor while the runs still train (a thread: Playwright's sync API)
        seen = await asyncio.to_thread(browser_home, url, timeout, browser)
    await asyncio.gather(*tasks)
    return {"runs": out, "home": waits, "browser": seen}


def cards_drawn() -> str:
    """A page condition: the script has finished and every home card's figure (a static image drawn by
    `gallery build`, one per phenomenon in the gallery's card index) is loaded and laid out."""
    from benchmarks.app import CARDS_VISIBLE
    from learnmech_core.store import gallery_root

    expected = len(json.loads((gallery_root() / "cards" / "index.json").read_text()))
    return (f"() => document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-script-state')"
            f" === 'notRunning' && ({CARDS_VISIBLE})() >= {expected}")



def browser_home(url: str, timeout: float, shots: str = "") -> float:
    """One Chromium visitor: seconds until every card's figure is visible;
    saves a screenshot of the page as `<shots>/home_during_load.png` when `shots` names a folder."""
    from playwright.sync_api import sync_playwright

    from learnmech_core.plots.render import FLAGS, chromium_path

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path()), args=FLAGS)
        page = b.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function(cards_drawn(), timeout=timeout * 1000)  # the script finished, every card drawn
        seconds = time.perf_counter() - started
        if shots and shots != "-":
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / "home_during_load.png"), full_page=True)
        b.close()
    return seconds


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def summarise(name: str, result: dict, peak: tuple, cpu_s: float, before: str, after: str) -> list[str]:
    runs = result["runs"].values()
    done = [r for r in runs if r["state"] == "finished"]
    firsts = [r["first_chart"] for r in runs if r["first_chart"] == r["first_chart"]]
    ends = [r["finished"] for r in done]
    exc = sum(len(r["exceptions"]) for r in runs)
    home = result["home"]
    fmt = lambda xs: f"median {statistics.median(xs):6.2f} s, worst {max(xs):6.2f} s" if xs else "n/a"  # noqa: E731
    lines = [f"[{name}] load average before {before}, after {after}; client CPU {cpu_s:.1f} s",
             f"  runs completed        {len(done)} of {len(result['runs'])}; exceptions shown: {exc}; "
             f"queued visibly: {sum(bool(r.get('queued')) for r in runs)}",
             f"  new visitor, home     {fmt(home)}  ({len(home)} visitors)",
             f"  Run -> first chart    {fmt(firsts)}",
             f"  Run -> finished       {fmt(ends)}",
             f"  memory peak           PSS {peak[0]:.0f} MB (RSS sum {peak[1]:.0f} MB) over {peak[2]} processes"]
    for r in runs:
        if r["state"] != "finished":
            lines.append(f"  not finished: {r['state']}")
    if result.get("browser") is not None:
        lines.append(f"  Chromium visitor, home with every figure visible: {result['browser']:.2f} s")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--trainer", default="before,process",
                        help="comma list of process | thread | before | process-nice<N>; repeat names to interleave")
    parser.add_argument("--profile", default="hosted")
    parser.add_argument("--visitors", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--delay", type=float, default=3.0, help="seconds after Run before the first new visitor")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--browser", nargs="?", const="-", default="",
                        help="also time one Chromium visitor of the home page during the load (optionally: a folder "
                             "for its screenshot)")
    args = parser.parse_args()
    report = []
    for trainer in [t.strip() for t in args.trainer.split(",") if t.strip()]:
        home = Path(tempfile.mkdtemp(prefix=f"learnmech_load_{trainer}_"))
        before = loadavg()
        proc, url = start_server(trainer, args.profile, home)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        try:
            idle = asyncio.run(visit_home(url, args.timeout))  # first visit: cards drawn, caches warm
            idle2 = asyncio.run(visit_home(url, args.timeout))
            print(f"[{trainer}] server up; home page on the idle server: first {idle:.2f} s, then {idle2:.2f} s",
                  flush=True)
            cpu0 = time.process_time()
            result = asyncio.run(scenario(url, args.sessions, args.visitors, args.steps, args.timeout, args.delay,
                                          args.browser))
            cpu = time.process_time() - cpu0
        finally:
            sampler.stop.set()
            sampler.join()
            stop_server(proc)
        lines = summarise(trainer, result, sampler.peak, cpu, before, loadavg())
        print("\n".join(lines), flush=True)
        report.extend(lines)
    print("\nsummary\n" + "\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
