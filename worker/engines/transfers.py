"""Many HTTP requests in flight at once through libcurl's multi interface (pycurl), for the load generator.

curl does the sockets, HTTP parsing, chunked decoding and keep-alive in C. Python sees one call per piece of a
body curl hands over, stamped with the time the loop woke for its socket (pieces read in one wake-up share a
stamp), and one call per finished request. The loop is libcurl's socket interface over the platform's selector
(epoll on Linux): it wakes for the sockets that have data only, and has no limit on descriptor numbers (curl's
own `select` stops at 1,024). Easy handles are reused, and the multi handle's connection cache keeps connections
alive from one request to the next. bench/serving.py measures what this costs the client.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

import certifi
import pycurl

Sink = Callable[[bytes, float], object]  # a piece of a 200 response's body, and when the loop woke for it
Done = Callable[[str | None], object]  # None, or why the request failed (HTTP status and body, curl's error)

_EVENTS = {pycurl.POLL_IN: selectors.EVENT_READ, pycurl.POLL_OUT: selectors.EVENT_WRITE,
           pycurl.POLL_INOUT: selectors.EVENT_READ | selectors.EVENT_WRITE}
ERROR_TEXT = 300  # characters of a failed request's reason


class _Slot:
    """One reusable easy handle and the request it carries now."""

    __slots__ = ("body", "curl", "done", "failure", "loop", "sink", "status")

    def __init__(self, loop: Transfers) -> None:
        self.loop = loop
        self.curl = pycurl.Curl()
        self.curl.slot = self
        self.curl.setopt(pycurl.WRITEFUNCTION, self.write)
        self.curl.setopt(pycurl.HEADERFUNCTION, self.header)
        self.curl.setopt(pycurl.NOSIGNAL, 1)
        self.curl.setopt(pycurl.PROXY, "")  # the engine is reached directly, whatever the environment says
        # an https endpoint: the wheel's libcurl looks for Red Hat's CA bundle path, certifi's is everywhere
        self.curl.setopt(pycurl.CAINFO, certifi.where())
        self.sink: Sink | None = None
        self.done: Done | None = None
        self.status = 0
        self.body: list[bytes] = []
        self.failure: str | None = None  # what the sink raised: the request's reason

    def header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):  # the status line (the last one counts, after a 100 Continue)
            self.status = int(line.split(None, 2)[1])

    def write(self, data: bytes) -> int | None:
        if self.status == 200 and self.sink is not None:
            try:
                self.sink(data, self.loop.now)
            except Exception as error:  # a body the sink cannot read: the request fails with the reason
                self.failure = f"{type(error).__name__}: {error}"
                return 0  # not all taken: curl stops the transfer
        elif sum(map(len, self.body)) < 4 * ERROR_TEXT:  # an error's body: the start says why
            self.body.append(data)


class Transfers:
    """The requests in flight, and the loop that moves them."""

    def __init__(self, headers: list[str], *, connect_timeout_s: float, stall_s: float) -> None:
        self.headers = [*headers, "Expect:"]  # no 100-continue round trip before a long prompt's body
        self.connect_timeout_ms = int(connect_timeout_s * 1000)
        self.stall_s = max(1, int(stall_s))
        self.now = time.time()  # when the loop last woke: the stamp of what it reads then
        self.active = 0
        self.idle: list[_Slot] = []
        self.selector = selectors.DefaultSelector()
        self.timer_at: float | None = None  # monotonic; when curl asked to be called without socket activity
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._timer)

    def post(self, url: str, body: bytes, sink: Sink, done: Done) -> None:
        """Send `body`; the response body goes to `sink` piece by piece, then `done` says how it ended. A request
        fails when its connection takes longer than connect_timeout_s, or the response is silent for stall_s."""
        slot = self.idle.pop() if self.idle else self._new_slot()
        slot.curl.setopt(pycurl.URL, url)
        slot.curl.setopt(pycurl.POSTFIELDS, body)
        self._start(slot, sink, done)

    def get(self, url: str, timeout_s: float, done: Callable[[str | None, bytes], object]) -> None:
        """GET `url` whole within `timeout_s`; `done` gets the reason it failed (or None) and the body."""
        slot = _Slot(self)  # its own handle: a GET with a total timeout is set up unlike the streamed POSTs
        slot.curl.setopt(pycurl.URL, url)
        slot.curl.setopt(pycurl.TIMEOUT_MS, int(timeout_s * 1000))
        slot.curl.setopt(pycurl.CONNECTTIMEOUT_MS, min(self.connect_timeout_ms, int(timeout_s * 1000)))
        pieces: list[bytes] = []

        def finished(error: str | None) -> None:
            slot.curl.close()
            done(error, b"".join(pieces))

        self._start(slot, lambda data, _now: pieces.append(data), finished, reuse=False)

    def wait(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for sockets with data (less when curl's timer is due), move them, and call the
        `done` of each request that ended."""
        if self.timer_at is not None:
            timeout_s = min(timeout_s, self.timer_at - time.monotonic())
        ready = self.selector.select(max(timeout_s, 0.0))
        self.now = time.time()
        for key, events in ready:
            mask = (pycurl.CSELECT_IN if events & selectors.EVENT_READ else 0) | \
                (pycurl.CSELECT_OUT if events & selectors.EVENT_WRITE else 0)
            self.multi.socket_action(key.fd, mask)
        if self.timer_at is not None and time.monotonic() >= self.timer_at:
            self.timer_at = None
            self.multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        self._finish()

    def close(self) -> None:
        for slot in self.idle:
            slot.curl.close()
        self.idle.clear()
        self.multi.close()
        self.selector.close()

    def _new_slot(self) -> _Slot:
        slot = _Slot(self)
        slot.curl.setopt(pycurl.HTTPHEADER, self.headers)
        slot.curl.setopt(pycurl.CONNECTTIMEOUT_MS, self.connect_timeout_ms)
        # under 1 byte/s for stall_s: the engine has hung (curl averages the speed over its last 5 s, sent bytes
        # included, so that a silence is noticed up to 5 s late)
        slot.curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        slot.curl.setopt(pycurl.LOW_SPEED_TIME, self.stall_s)
        return slot

    def _start(self, slot: _Slot, sink: Sink, done: Done, reuse: bool = True) -> None:
        slot.sink, slot.done, slot.status = sink, done, 0
        slot.body, slot.failure = [], None
        slot.curl.reuse = reuse
        self.active += 1
        self.multi.add_handle(slot.curl)

    def _finish(self) -> None:
        while True:
            queued, succeeded, failed = self.multi.info_read()
            for curl, error in [(curl, None) for curl in succeeded] + \
                    [(curl, f"curl error {number}: {message}") for curl, number, message in failed]:
                self.multi.remove_handle(curl)
                self.active -= 1
                slot = curl.slot
                if slot.failure is not None:
                    error = slot.failure
                elif error is None and slot.status != 200:
                    text = b"".join(slot.body).decode("utf-8", "replace")
                    error = f"HTTP {slot.status}: {' '.join(text.split())}"
                done, slot.done, slot.sink = slot.done, None, None
                if curl.reuse:
                    self.idle.append(slot)
                done(error[:ERROR_TEXT] if error else None)
            if not queued:
                return

    def _socket(self, what: int, fd: int, _multi, _socketp) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in self.selector.get_map():
                self.selector.unregister(fd)
        elif fd in self.selector.get_map():
            self.selector.modify(fd, _EVENTS[what])
        else:
            self.selector.register(fd, _EVENTS[what])

    def _timer(self, timeout_ms: int) -> None:
        self.timer_at = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
