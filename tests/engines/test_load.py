"""The load generator (worker.engines.load, over worker.engines.transfers) against a real local streaming endpoint:
an aiohttp server in a thread of the test, whose handlers wait for conditions (requests in flight, scrapes seen)
rather than for time, so that what is asserted follows from the order of events, not from their speed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from worker.engines import load
from worker.engines.base import Endpoint, MetricNames
from worker.engines.load import arrival_offsets_s, drive

GATE_S = 30.0  # a condition not met by then fails the test (the handler answers 503) instead of hanging it


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def token_event(text: str = " tok") -> bytes:
    return event({"id": "x", "object": "text_completion", "choices": [{"index": 0, "text": text}], "usage": None})


def usage_event(n: int) -> bytes:
    usage = {"prompt_tokens": 3, "completion_tokens": n}
    return event({"id": "x", "choices": [], "usage": usage}) + b"data: [DONE]\n\n"


@dataclass
class Server:
    """What the endpoint saw, and the hooks a test sets: `hold` runs before a completion is answered."""

    loop: asyncio.AbstractEventLoop
    port: int
    changed: asyncio.Condition
    received: int = 0
    active: int = 0
    most_active: int = 0
    scrapes: int = 0
    peers: set[int] = field(default_factory=set)  # the client ports completions came from
    hold: Callable[[Server], Awaitable[None]] | None = None
    respond: Callable[[web.Request, dict], Awaitable[web.StreamResponse]] | None = None

    def endpoint(self, *, metrics: bool = False) -> Endpoint:
        root = f"http://127.0.0.1:{self.port}"
        return Endpoint(base_url=f"{root}/v1", model="m", metrics_url=f"{root}/metrics" if metrics else None,
                        metrics=MetricNames(running="engine:running", waiting="engine:waiting"),
                        fixed_length_fields=())

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(condition), GATE_S)

    async def _note(self) -> None:
        async with self.changed:
            self.changed.notify_all()


async def tokens(request: web.Request, body: dict) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for _ in range(body["max_tokens"]):
        await response.write(token_event())
    await response.write(usage_event(body["max_tokens"]))
    return response


@pytest.fixture
def server() -> Iterator[Server]:
    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = Server(loop, port, asyncio.Condition())  # created outside a running loop: bound at first use

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.received += 1
        state.active += 1
        state.most_active = max(state.most_active, state.active)
        state.peers.add(request.transport.get_extra_info("peername")[1])
        await state._note()
        try:
            if state.hold is not None:
                try:
                    await state.hold(state)
                except TimeoutError:
                    return web.Response(status=503, text="the test's condition was never met")
            return await (state.respond or tokens)(request, body)
        finally:
            state.active -= 1
            await state._note()

    async def metrics(request: web.Request) -> web.Response:
        state.scrapes += 1
        await state._note()
        return web.Response(text="# TYPE engine:running gauge\nengine:running 2\nengine:waiting 0\n")

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield state
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_a_stream_split_anywhere_counts_each_token_once_stamped_after_it_was_sent(server):
    sent_at: list[float] = []

    async def split(request: web.Request, body: dict) -> web.StreamResponse:
        """Each token event in two writes cut inside its JSON, the usage cut inside its `data:` prefix."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(body["max_tokens"]):
            line = token_event(f" t{i}")
            await response.write(line[:17])
            await asyncio.sleep(0.01)  # apart, so that the client may read them apart (it need not)
            sent_at.append(time.time())
            await response.write(line[17:])
            await asyncio.sleep(0.01)
        tail = usage_event(body["max_tokens"])
        await response.write(tail[:3])
        await response.write(tail[3:])
        return response

    server.respond = split
    run = drive(server.endpoint(), ["a prompt"], max_tokens=6, concurrency=1, fixed_length=False)
    (record,) = run.records
    assert record.error is None
    assert (record.completion_tokens, record.prompt_tokens, len(record.chunk_at)) == (6, 3, 6)
    assert record.chunk_at == sorted(record.chunk_at)
    assert all(got >= sent for got, sent in zip(record.chunk_at, sent_at, strict=True))  # never before it existed
    assert record.sent_at <= record.chunk_at[0] <= record.done_at


def test_closed_loop_keeps_exactly_concurrency_requests_in_flight_over_kept_alive_connections(server):
    # each answer waits until 3 requests are in the server at once, or until every prompt has come in (the tail)
    server.hold = lambda s: s.until(lambda: s.active >= 3 or s.received == 8)
    run = drive(server.endpoint(), [f"p{i}" for i in range(8)], max_tokens=2, concurrency=3)
    assert run.errors == []
    assert [r.completion_tokens for r in run.records] == [2] * 8
    assert server.most_active == 3  # reached, never passed
    assert len(server.peers) <= 3  # connections reused from one request to the next
    assert run.started_at <= run.full_at <= run.drain_at <= run.ended_at


def test_open_loop_sends_on_its_arrival_times_without_waiting_for_answers(server):
    # no answer before all 6 requests are in: only an open loop can finish
    server.hold = lambda s: s.until(lambda: s.received == 6)
    rate, seed = 40.0, 5
    run = drive(server.endpoint(), [f"p{i}" for i in range(6)], max_tokens=1, request_rate=rate, seed=seed)
    assert run.errors == []
    assert server.most_active == 6
    offsets = arrival_offsets_s(6, rate, seed)
    sent = [r.sent_at - run.full_at for r in run.records]
    assert all(s >= o - 0.002 for s, o in zip(sent, offsets, strict=True))  # never early (2 ms: the two clocks)
    assert sent == sorted(sent)


def test_the_sampler_records_the_clients_in_flight_count_and_the_engines_gauges(server):
    # the answers wait until 4 requests are in and two scrapes have ended since: the sample of the first of them
    # was taken while all 4 were in flight (the next scrape starts only after that sample is kept)
    seen: list[int] = []

    async def hold(s: Server) -> None:
        await s.until(lambda: s.received == 4)
        if not seen:
            seen.append(s.scrapes)
        await s.until(lambda: s.scrapes >= seen[0] + 2)

    server.hold = hold
    run = drive(server.endpoint(metrics=True), [f"p{i}" for i in range(4)], max_tokens=1, request_rate=1000.0,
                sample_s=0.01)
    assert run.errors == []
    assert max(sample.in_flight for sample in run.samples) == 4
    assert {sample.running for sample in run.samples} == {2.0}
    assert run.metrics_before["engine:running"] == run.metrics_after["engine:running"] == 2.0


def test_an_http_error_and_a_refused_connection_fail_their_requests_with_the_reason(server):
    async def refuse(request: web.Request, body: dict) -> web.StreamResponse:
        if body["prompt"] == "too long":
            return web.json_response({"message": "This model's maximum context length is 8 tokens"}, status=400)
        return await tokens(request, body)

    server.respond = refuse
    run = drive(server.endpoint(), ["fine", "too long", "fine too"], max_tokens=3, concurrency=1)
    fine, refused, fine_too = run.records
    assert refused.error == "HTTP 400: {\"message\": \"This model's maximum context length is 8 tokens\"}"
    assert refused.e2e_s is None and refused.done_at is not None
    assert fine.error is None and fine_too.error is None and fine_too.completion_tokens == 3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]  # nothing listens there once the probe is closed
    gone = Endpoint(base_url=f"http://127.0.0.1:{nobody}/v1", model="m", fixed_length_fields=())
    run = drive(gone, ["a", "b"], max_tokens=1, concurrency=2)
    assert [r.error.split(":")[0] for r in run.records] == ["curl error 7"] * 2  # couldn't connect


def test_a_stream_that_is_not_json_fails_its_request_with_the_parsers_reason(server):
    async def garble(request: web.Request, body: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if body["prompt"] == "a line":
            await response.write(token_event() + b'data: {"usage": {"prompt_tok\n\n' + token_event())
        else:
            await response.write(token_event() + token_event() + b'data: {"usage": nope')  # read at the end
        return response

    server.respond = garble
    run = drive(server.endpoint(), ["a line", "last line"], max_tokens=2, concurrency=1)
    assert [r.error.split(":")[0] for r in run.records] == ["JSONDecodeError"] * 2
    assert [len(r.chunk_at) for r in run.records] == [1, 2]


def test_an_engine_that_drops_the_connection_mid_stream_fails_the_request(server):
    async def drop(request: web.Request, body: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(token_event())
        request.transport.close()  # the engine died: the chunked body never ends
        return response

    server.respond = drop
    run = drive(server.endpoint(), ["a"], max_tokens=4, concurrency=1)
    (record,) = run.records
    assert record.error is not None and record.error.startswith("curl error 18")  # partial file
    assert len(record.chunk_at) == 1


def test_an_engine_silent_longer_than_the_read_timeout_fails_the_request(server, monkeypatch):
    monkeypatch.setattr(load, "READ_TIMEOUT_S", 1.0)
    release = asyncio.Event()

    async def hang(request: web.Request, body: dict) -> web.StreamResponse:
        await release.wait()  # silent until the client has given up (curl counts a silence from its last byte on)
        return await tokens(request, body)

    server.respond = hang
    run = drive(server.endpoint(), ["a"], max_tokens=4, concurrency=1)
    server.loop.call_soon_threadsafe(release.set)
    (record,) = run.records
    assert record.error is not None and record.error.startswith("curl error 28")  # operation too slow
    assert record.done_at - record.sent_at >= 1.0
