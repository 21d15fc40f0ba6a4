"""vLLM's OpenAI API server with timestamps on each completion request's way through it (bench/ttft_breakdown.py).

Run by vLLM's own interpreter in place of `-m vllm.entrypoints.openai.api_server` (same arguments); it wraps a few
of vLLM's and uvicorn's functions, then starts the server. For each streamed completion whose body carries a
`request_id`, one JSON line goes to $WATTSWEEP_TIMESTAMPS when its stream ends:

  recv        uvicorn parsed the request's first bytes (HttpToolsProtocol.on_message_begin, in data_received);
              nodelay: TCP_NODELAY on its socket (1: no Nagle delay on small chunks)
  asgi        the request's ASGI task began to run (RequestResponseCycle.run_asgi)
  handler     the route's handler began (the body read, parsed and validated by FastAPI and pydantic)
  arrival     vLLM's arrival_time (renderers.base.render_cmpl_async: before tokenization), the engine TTFT's start
  added       the request entered AsyncLLM's output processor, just before it is sent to the engine core
  queued, scheduled, first_token   the engine core's own events (its monotonic clock, converted to wall time)
  iteration   when the API server took the first token's outputs from the core: the engine TTFT's end
  last_iteration   the same for the request's last tokens: the end of the engine's e2e
  ttft        vLLM's first-token latency as its histogram observes it (iteration - arrival)
  headers_sent, body_sent   uvicorn wrote the response's headers, and its first chunk, to the socket
  yielded     the first SSE chunk left the completion generator (detokenized, JSON-encoded)
  chunks      every SSE chunk's yield time (the last is the usage chunk where asked)

All times are time.time() of this host, so they compare with the client's. Nothing here changes what vLLM does
beyond a few microseconds of bookkeeping per request.
"""

import json
import os
import runpy
import socket
import sys
import time

MODULE = "vllm.entrypoints.openai.api_server"


def timed_command(command: list[str]) -> list[str] | None:
    """`python -m vllm.entrypoints.openai.api_server ARGS` under this file instead; None for another command."""
    if command[1:3] != ["-m", MODULE]:
        return None
    return [command[0], __file__, *command[3:]]


def read_stamps(path: str) -> dict[str, dict]:
    """The stamps written so far, by the body's request_id."""
    try:
        with open(path) as lines:
            return {stamps["id"]: stamps for stamps in map(json.loads, lines)}
    except FileNotFoundError:
        return {}


def install(path: str) -> None:
    from uvicorn.protocols.http import httptools_impl
    from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
    from vllm.v1.engine.output_processor import OutputProcessor
    from vllm.v1.metrics.stats import IterationStats

    by_id: dict[str, dict] = {}
    out = open(path, "a", buffering=1)

    def key(internal_id: str) -> str:  # cmpl-<request_id>-<index>[-<random>]
        return internal_id.split("-")[1] if internal_id.startswith("cmpl-") else internal_id

    begin = httptools_impl.HttpToolsProtocol.on_message_begin

    def on_message_begin(self):
        begin(self)
        sock = self.transport.get_extra_info("socket")
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) if sock is not None else None
        self.scope["wattsweep"] = {"recv": time.time(), "nodelay": nodelay}  # 1: no Nagle delay on our chunks

    httptools_impl.HttpToolsProtocol.on_message_begin = on_message_begin

    run_asgi = httptools_impl.RequestResponseCycle.run_asgi

    async def timed_run_asgi(self, app):
        stamps = self.scope.get("wattsweep")
        if stamps is not None:
            stamps["asgi"] = time.time()
        return await run_asgi(self, app)

    httptools_impl.RequestResponseCycle.run_asgi = timed_run_asgi

    send = httptools_impl.RequestResponseCycle.send

    async def timed_send(self, message):
        stamps = self.scope.get("wattsweep")
        if stamps is not None:
            if message["type"] == "http.response.start":
                stamps["headers_sent"] = time.time()
            elif message.get("body") and "body_sent" not in stamps:
                stamps["body_sent"] = time.time()
        return await send(self, message)

    httptools_impl.RequestResponseCycle.send = timed_send

    create = OpenAIServingCompletion.create_completion

    async def create_completion(self, request, raw_request=None):
        now = time.time()
        if request.request_id and raw_request is not None:
            stamps = raw_request.scope.get("wattsweep", {})
            stamps["handler"] = now
            by_id[request.request_id] = stamps
        return await create(self, request, raw_request)

    OpenAIServingCompletion.create_completion = create_completion

    add = OutputProcessor.add_request

    def add_request(self, request, *args, **kwargs):
        stamps = by_id.get(key(request.request_id))
        if stamps is not None:
            stamps["added"] = time.time()
            stamps["arrival"] = request.arrival_time
        return add(self, request, *args, **kwargs)

    OutputProcessor.add_request = add_request

    update = IterationStats.update_from_output

    def update_from_output(self, output, engine_core_timestamp, is_prefilling, req_stats, *args, **kwargs):
        update(self, output, engine_core_timestamp, is_prefilling, req_stats, *args, **kwargs)
        stamps = by_id.get(key(output.request_id))
        if stamps is not None:
            stamps["last_iteration"] = self.iteration_timestamp  # the engine's e2e ends at the last one
        if is_prefilling and stamps is not None:
            wall_minus_monotonic = time.time() - time.monotonic()
            stamps.update(queued=req_stats.queued_ts + wall_minus_monotonic,
                          scheduled=req_stats.scheduled_ts + wall_minus_monotonic,
                          first_token=engine_core_timestamp + wall_minus_monotonic,
                          iteration=self.iteration_timestamp, ttft=req_stats.first_token_latency)

    IterationStats.update_from_output = update_from_output

    stream = OpenAIServingCompletion.completion_stream_generator

    async def completion_stream_generator(self, request, engine_inputs, result_generator, request_id, *args,
                                          **kwargs):
        stamps = by_id.get(key(request_id))
        chunks = []
        async for text in stream(self, request, engine_inputs, result_generator, request_id, *args, **kwargs):
            if stamps is not None and text.startswith("data: {"):
                chunks.append(time.time())
            yield text
        if stamps is not None:
            stamps.update(yielded=chunks[0] if chunks else None, chunks=chunks, id=key(request_id))
            out.write(json.dumps(stamps) + "\n")
            by_id.pop(key(request_id), None)

    OpenAIServingCompletion.completion_stream_generator = completion_stream_generator


if __name__ == "__main__":
    install(os.environ["WATTSWEEP_TIMESTAMPS"])
    sys.argv[0] = MODULE
    runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
