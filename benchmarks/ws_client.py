"""A minimal Streamlit client over the app's own websocket protocol (no browser), for load tests.

It does what the browser's JavaScript does for a session, and nothing else: opens `/_stcore/stream`,
asks for a page (with a query string), reads the ForwardMsgs (protobuf), keeps the latest element at
each delta path, clicks a button by its key (a trigger widget state), and replays the `run_every`
fragment timers the server asks for (`auto_rerun`), as the browser does while a live run polls.

What it leaves out, compared with a browser: drawing (Plotly, layout, fonts), the HTTP requests for
the JavaScript/CSS bundle and media files, the widget values the browser would echo back (the load
only uses the values set by the query string), and the app heartbeat. So it costs the server what a
visitor costs, and the client machine little: one asyncio task per session and protobuf parsing in C.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect

FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


@dataclass
class Element:
    kind: str
    text: str = ""
    widget_id: str = ""


@dataclass
class Session:
    """One visitor: a websocket, the elements drawn so far, and the fragment timers it replays."""

    url: str  # http://host:port
    page: str = ""  # url path of the page ("" = home, "explore", ...)
    query: str = ""
    elements: dict[tuple, Element] = field(default_factory=dict)
    fragments: dict[str, float] = field(default_factory=dict)  # fragment id -> interval (s)
    running: bool = False
    page_hash: str = ""  # the page's script hash, from the server's `navigation` message
    runs_finished: int = 0
    exceptions: list[str] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)  # (time, event)

    async def __aenter__(self) -> Session:
        ws_url = self.url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self._ws = await connect(ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=60,
                                 ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        self._timers: dict[str, asyncio.Task] = {}
        self._finished = asyncio.Event()
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._timers.values():
            task.cancel()
        self._reader.cancel()
        await self._ws.close()

    # --- sending -----------------------------------------------------------------------------------
    async def rerun(self, trigger: str | None = None, fragment_id: str = "") -> None:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_name = self.page
        state.page_script_hash = self.page_hash
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = True
        if trigger:
            widget = state.widget_states.widgets.add()
            widget.id = trigger
            widget.trigger_value = True
        self._finished.clear()
        self.running = True
        await self._ws.send(msg.SerializeToString())

    async def open(self, timeout: float = 120.0) -> float:
        """Ask for the page; seconds until its script finished (all its elements received)."""
        started = time.perf_counter()
        await self.rerun()
        await self.wait_finished(timeout)
        return time.perf_counter() - started

    async def click(self, key: str) -> None:
        """Press the button whose widget key is `key` (its id ends in '-<key>')."""
        ids = [e.widget_id for e in self.elements.values() if e.kind == "button" and e.widget_id.endswith(f"-{key}")]
        if not ids:
            raise LookupError(f"no button with key {key!r} on the page")
        await self.rerun(trigger=ids[0])

    async def wait_finished(self, timeout: float) -> None:
        await asyncio.wait_for(self._finished.wait(), timeout)

    # --- reading -------------------------------------------------------------------------------------
    def texts(self, kind: str | None = None) -> list[str]:
        return [e.text for e in self.elements.values() if kind is None or e.kind == kind]

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.elements.values())

    async def _read(self) -> None:
        async for raw in self._ws:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            self._handle(msg)

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "navigation":  # st.navigation names the page it ran; the browser sends it back
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        if kind == "new_session" and not msg.metadata.run.fragment_ids:  # a full run: the page is drawn afresh
            for task in self._timers.values():
                task.cancel()
            self._timers.clear()
            self.fragments.clear()
            self.elements.clear()
        elif kind == "delta":
            self._delta(tuple(msg.metadata.delta_path), msg.delta)
        elif kind == "script_finished":
            if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return  # the script asked for a rerun (st.rerun): the page is not drawn yet
            self.running = False
            if msg.script_finished in FINISHED:
                self.runs_finished += 1
            self._finished.set()
        elif kind == "auto_rerun":
            self._start_timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                task = self._timers.pop(fragment_id, None)
                if task is not None:
                    task.cancel()
                self.fragments.pop(fragment_id, None)
        elif kind == "session_status_changed":
            self.running = msg.session_status_changed.script_is_running

    def _delta(self, path: tuple, delta) -> None:
        which = delta.WhichOneof("type")
        if which == "new_element":
            el = delta.new_element
            etype = el.WhichOneof("type")
            item = Element(etype)
            if etype == "button":
                item.widget_id, item.text = el.button.id, el.button.label
            elif etype == "progress":
                item.text = el.progress.text
            elif etype == "markdown":
                item.text = el.markdown.body
            elif etype == "alert":
                item.text = el.alert.body
            elif etype == "exception":
                item.text = f"{el.exception.type}: {el.exception.message}"
                self.exceptions.append(item.text)
            self.elements[path] = item
            # a new element replaces what was below it at the same path (a redrawn block)
        elif which == "add_block":
            self.elements[path] = Element("block")

    def _start_timer(self, fragment_id: str, interval: float) -> None:
        if fragment_id in self._timers:
            self._timers[fragment_id].cancel()
        self.fragments[fragment_id] = interval
        self._timers[fragment_id] = asyncio.create_task(self._tick(fragment_id, interval))

    async def _tick(self, fragment_id: str, interval: float) -> None:
        """The browser's run_every timer: rerun the fragment every interval while no script runs."""
        while True:
            await asyncio.sleep(interval)
            if not self.running:
                try:
                    await self.rerun(fragment_id=fragment_id)
                except Exception:
                    return
