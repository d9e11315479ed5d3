"""Figures drawn by plotly.js in headless Chromium: static SVG images and the boxes of their texts.

`gallery thumbnails` uses it to make the home page's card images (kaleido 1.x does not start against
Debian's Chromium, see the README), and the tests use `problems` to fail on overlapping or clipped
labels in the shipped figures. The browser is Debian's Chromium (`LEARNMECH_CHROMIUM` overrides the
path), driven by Playwright; plotly.js is the copy inside the `plotly` package, so nothing is fetched.

    with Renderer() as r:
        svg = r.svg(fig, 320, 200)          # an <svg ...> string, fonts as the browser drew them
        r.problems(fig, 320, 200)           # ['annotation "2/η" overlaps tick label "10"', ...]
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import plotly.graph_objects as go

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
SLACK_PX = 1.5  # boxes may touch by this much (anti-aliasing, glyph side bearings)


def chromium_path() -> Path:
    return Path(os.environ.get("LEARNMECH_CHROMIUM", "/usr/bin/chromium"))


def available() -> str:
    """'' when figures can be rendered here, else the reason in words."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements-test.txt)"
    if not chromium_path().exists():
        return f"no Chromium at {chromium_path()} (apt-get install chromium, or set LEARNMECH_CHROMIUM)"
    return ""


# Every text of a drawn figure with its role and the corners of its box, in figure pixels. Roles: title,
# axis-title, annotation (subplot titles are annotations; `axis` holds its index), tick (`axis`: the
# axis id), legend; and the boxes of scatter markers, which an annotation must not cover.
_MEASURE_JS = """
(div) => {
  const base = div.querySelector('svg.main-svg').getBoundingClientRect();
  const corners = (el) => {  // the box of the element in its own frame, mapped to the page: rotation kept
    const b = el.getBBox(), m = el.getScreenCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]].map(
      ([x, y]) => [m.a * x + m.c * y + m.e - base.left, m.b * x + m.d * y + m.f - base.top]); };
  const out = [];
  const add = (el, role, axis) => { const text = (el.textContent || '').trim(); const b = el.getBBox();
    if (text && b.width > 0) out.push({role, axis: axis || '', text, corners: corners(el)}); };
  div.querySelectorAll('.g-gtitle text.gtitle').forEach(el => add(el, 'title'));
  div.querySelectorAll('[class*="title"] text[class$="title"]').forEach(el => {
    if (!el.classList.contains('gtitle') && !el.closest('.legend')) add(el, 'axis-title'); });
  div.querySelectorAll('g.annotation-text-g').forEach(el => {
    add(el, 'annotation', el.closest('g.annotation').getAttribute('data-index')); });
  div.querySelectorAll('g.xaxislayer-above > g, g.yaxislayer-above > g').forEach(g => {
    const axis = (g.getAttribute('class') || '').replace('tick', '').trim();
    g.querySelectorAll('text').forEach(el => add(el, 'tick', axis)); });
  div.querySelectorAll('g.legend g.traces text').forEach(el => add(el, 'legend'));
  div.querySelectorAll('g.scatterlayer g.textpoint text').forEach(el => {  // cut at the plot unless cliponaxis=false
    add(el, el.closest('[clip-path]') ? 'label' : 'free-label'); });
  div.querySelectorAll('clipPath.plotclip').forEach(clip => {  // each subplot's plotting area
    const r = clip.querySelector('rect'), user = div.querySelector(`[clip-path*="${clip.id}"]`);
    if (!r || !user) return;
    const w = +r.getAttribute('width'), h = +r.getAttribute('height'), m = user.getScreenCTM();
    out.push({role: 'plot-area', axis: '', text: '', corners: [[0, 0], [w, 0], [w, h], [0, h]].map(
      ([x, y]) => [m.a * x + m.c * y + m.e - base.left, m.b * x + m.d * y + m.f - base.top])}); });
  div.querySelectorAll('g.scatterlayer g.points path.point').forEach(el => {
    const b = el.getBBox(); if (b.width > 0) out.push({role: 'marker', axis: '', text: '', corners: corners(el)}); });
  return {width: base.width, height: base.height, texts: out};
}
"""

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;font-family:"Source Sans Pro","Source Sans 3",sans-serif}</style>
<script>%s</script></head><body><div id="fig"></div><div id="svg"></div></body></html>"""


class Renderer:
    """One headless Chromium page with plotly.js loaded; use as a context manager."""

    def __init__(self, browser=None):
        """`browser`: a Playwright browser already running in this thread (else one is launched)."""
        self._given = browser
        self._pw = self._browser = self._page = None

    def __enter__(self) -> Renderer:
        from plotly.offline import get_plotlyjs

        if self._given is None:
            from playwright.sync_api import sync_playwright

            reason = available()
            if reason:
                raise RuntimeError(f"cannot render figures: {reason}")
            self._pw = sync_playwright().start()
            self._browser = self._pw.chromium.launch(executable_path=str(chromium_path()), args=FLAGS)
        self._page = (self._given or self._browser).new_page(viewport={"width": 1600, "height": 1200})
        self._page.set_content(_PAGE % get_plotlyjs())
        return self

    def __exit__(self, *exc) -> None:
        self._page.close()
        if self._browser is not None:
            self._browser.close()
        if self._pw is not None:
            self._pw.stop()

    def _draw(self, fig: go.Figure, width: int, height: int) -> None:
        spec = json.loads(fig.to_json())
        for i, trace in enumerate(spec.get("data", [])):
            trace.setdefault("uid", f"t{i}")  # plotly.js would draw random ones into the SVG
        layout = {**spec.get("layout", {}), "width": width, "height": height, "autosize": False}
        self._page.evaluate(
            "async ([data, layout]) => { const d = document.getElementById('fig'); Plotly.purge(d);"
            " await Plotly.newPlot(d, data, layout, {staticPlot: true, displayModeBar: false}); }",
            [spec.get("data", []), layout])

    def svg(self, fig: go.Figure, width: int, height: int) -> str:
        """The figure as an SVG document of width x height pixels (plotly.js's own export)."""
        self._draw(fig, width, height)
        url = self._page.evaluate(
            "([w, h]) => Plotly.toImage(document.getElementById('fig'), {format: 'svg', width: w, height: h})",
            [width, height])
        from urllib.parse import unquote

        prefix = "data:image/svg+xml,"
        if not url.startswith(prefix):
            raise RuntimeError(f"plotly.js returned {url[:40]!r} instead of an SVG")
        svg = unquote(url[len(prefix):])
        uid = re.search(r'id="defs-([0-9a-z]+)"', svg)  # plotly.js's random id of the drawing: a fixed one, so
        if uid:  # redrawing the same figure gives the same file
            svg = re.sub(rf"(?<=[A-Za-z-]){uid.group(1)}(?=[A-Za-z\"'])", "fig", svg)
        return svg

    def texts(self, fig: go.Figure, width: int, height: int) -> dict:
        """{'width', 'height', 'texts': [{'role', 'axis', 'text', 'corners': [[x, y] x 4]}, ...]} in figure pixels."""
        self._draw(fig, width, height)
        return self._page.evaluate(_MEASURE_JS, self._page.query_selector("#fig"))

    def svg_texts(self, svg: str) -> dict:
        """`texts` of an SVG made by `svg` (a shipped card image), measured as the browser draws it."""
        self._page.evaluate("(svg) => { document.getElementById('svg').innerHTML = svg; }", svg)
        try:
            return self._page.evaluate(_MEASURE_JS, self._page.query_selector("#svg"))
        finally:
            self._page.evaluate("() => { document.getElementById('svg').innerHTML = ''; }")

    def problems(self, fig: go.Figure, width: int, height: int) -> list[str]:
        """Readability problems of the figure drawn at this size, in words (empty: none found)."""
        return layout_problems(self.texts(fig, width, height))

    def freeze_ranges(self, fig: go.Figure, width: int, height: int) -> go.Figure:
        """Set every axis range to what plotly.js chooses for the data alone, so labels moved later (or
        long ones) cannot stretch an axis: plotly.js widens a range to fit the text of an annotation that
        sits at a data coordinate. Changes `fig` in place and returns it."""
        bare = go.Figure(fig)
        bare.update_annotations(visible=False)
        self._draw(bare, width, height)
        ranges = self._page.evaluate(
            "() => { const L = document.getElementById('fig')._fullLayout; const out = {};"
            " Object.keys(L).filter(k => /^[xy]axis[0-9]*$/.test(k)).forEach(k => { out[k] = L[k].range; });"
            " return out; }")
        for name, value in ranges.items():
            if value and all(isinstance(v, (int, float)) for v in value):
                fig.layout[name].update(range=value, autorange=False)
        return fig

    def place_annotations(self, fig: go.Figure, width: int, height: int, drop: bool = False) -> go.Figure:
        """Move each annotation that collides with something to the candidate spot with the fewest problems.

        A label of a horizontal line may sit at its left, middle or right end, above or below it; a label
        of a vertical line at its top, middle or bottom, left or right of it; a label at a data point on
        any side of the point. Annotations are tried one at a time, first to last; each keeps its spot
        when no candidate is better. With `drop`, one that still collides wherever it goes is hidden (a
        card image leaves it to the page's full-size figure). Changes `fig` in place and returns it.
        """
        for i, ann in enumerate(fig.layout.annotations):
            best = _score(self.texts(fig, width, height), i)
            if best == 0:
                continue
            start = ann.to_plotly_json()
            for candidate in _candidates(start):
                ann.update(candidate)
                score = _score(self.texts(fig, width, height), i)
                if score < best:
                    best, start = score, ann.to_plotly_json()
                if best == 0:
                    break
            fig.layout.annotations[i].update(start)
            if drop and best > 0 and _candidates(start):
                fig.layout.annotations[i].update(visible=False)
        return fig


def _score(measured: dict, index: int) -> int:
    """Problems that involve annotation `index`: clipped or overlapping texts count 10, covered markers 1."""
    texts = [t for t in measured["texts"] if t["role"] not in ("marker", "plot-area")]
    mine = [t for t in texts if t["role"] == "annotation" and t["axis"] == str(index)]
    if not mine:
        return 0
    w, h = measured["width"], measured["height"]
    score = 0
    for t in mine:
        xs, ys = [c[0] for c in t["corners"]], [c[1] for c in t["corners"]]
        score += 10 * (min(xs) < -SLACK_PX or min(ys) < -SLACK_PX or max(xs) > w + SLACK_PX or max(ys) > h + SLACK_PX)
        score += 10 * sum(_overlap(t["corners"], o["corners"]) for o in texts if o is not t)
        score += sum(_overlap(t["corners"], m["corners"]) for m in measured["texts"] if m["role"] == "marker")
    return score


def _candidates(ann: dict) -> list[dict]:
    """Other places for an annotation: along its line (hline/vline labels) or around its point."""
    xref, yref = str(ann.get("xref", "x")), str(ann.get("yref", "y"))
    if ann.get("showarrow", True) or "paper" in (xref, yref):  # arrows and subplot titles stay
        return []
    sides = [{"xanchor": xa, "yanchor": ya} for ya in ("bottom", "top") for xa in ("left", "right")]
    if xref.endswith("domain"):  # the label of a horizontal line, inside the plot along it
        return [{"x": x, "xanchor": xa, "yanchor": ya} for x, xa in ((0, "left"), (1, "right"), (0.5, "center"))
                for ya in ("bottom", "top")]
    if yref.endswith("domain"):  # the label of a vertical line, inside the plot along it
        return [{"y": y, "yanchor": ya, "xanchor": xa} for y, ya in ((1, "top"), (0, "bottom"), (0.5, "middle"))
                for xa in ("left", "right")]
    return [{**side, "xshift": 4 if side["xanchor"] == "left" else -4,
             "yshift": 4 if side["yanchor"] == "bottom" else -4} for side in sides] + [
        {"xanchor": "center", "yanchor": ya, "xshift": 0, "yshift": 8 if ya == "bottom" else -8}
        for ya in ("bottom", "top")]


def _overlap(a, b) -> bool:
    """Whether two convex quadrilaterals (corner lists) overlap by more than SLACK_PX (separating axes)."""
    for quad in (a, b):
        for i in range(4):
            (x0, y0), (x1, y1) = quad[i], quad[(i + 1) % 4]
            nx, ny = y0 - y1, x1 - x0
            norm = (nx * nx + ny * ny) ** 0.5 or 1.0
            pa = [(x * nx + y * ny) / norm for x, y in a]
            pb = [(x * nx + y * ny) / norm for x, y in b]
            if min(max(pa), max(pb)) - max(min(pa), min(pb)) <= SLACK_PX:
                return False
    return True


def _bounds(corners) -> tuple[float, float, float, float]:
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


def layout_problems(measured: dict) -> list[str]:
    """Clipped texts, texts that overlap one another, and annotations that cover markers.

    Tick labels are compared with the other labels of their own axis and with every non-tick text
    (labels of different axes may share a corner of the plot). Markers may overlap each other.
    """
    w, h = measured["width"], measured["height"]
    texts = [t for t in measured["texts"] if t["role"] not in ("marker", "plot-area")]
    markers = [t for t in measured["texts"] if t["role"] == "marker"]
    areas = [_bounds(t["corners"]) for t in measured["texts"] if t["role"] == "plot-area"]
    out = []
    for t in texts:
        x0, y0, x1, y1 = _bounds(t["corners"])
        if x0 < -SLACK_PX or y0 < -SLACK_PX or x1 > w + SLACK_PX or y1 > h + SLACK_PX:
            out.append(f"{t['role']} {t['text']!r} is clipped by the figure's edge")
        elif t["role"] == "label":  # text of a trace is cut at its plot area
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            area = next((a for a in areas if a[0] <= cx <= a[2] and a[1] <= cy <= a[3]), None)
            if area is None or x0 < area[0] - SLACK_PX or x1 > area[2] + SLACK_PX or y0 < area[1] - SLACK_PX \
                    or y1 > area[3] + SLACK_PX:
                out.append(f"label {t['text']!r} is cut at the edge of its plot")
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if a["role"] == b["role"] == "tick" and a["axis"] != b["axis"]:
                continue
            if a["role"] == b["role"] == "legend":
                continue
            if _overlap(a["corners"], b["corners"]):
                out.append(f"{a['role']} {a['text']!r} overlaps {b['role']} {b['text']!r}")
    for a in texts:
        if a["role"] == "annotation" and any(_overlap(a["corners"], m["corners"]) for m in markers):
            out.append(f"annotation {a['text']!r} covers data points")
    return out
