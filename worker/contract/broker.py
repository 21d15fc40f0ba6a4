"""The Redis broker seen directly: is it reachable, and which job ids does it hold?

This is the one place that reads kombu's private Redis layout. `reconcile` needs it to tell a lost job from
one that is merely waiting: a job sent long ago and not yet taken (a long queue, busy workers) has, in the
database, exactly the state of a job whose message Redis lost (queued, no lease, `dispatched_at` past the
grace period); leases begin only when a worker claims a unit. kombu and Celery offer no public way to list
the messages of a queue without taking them, nor those a worker reserved (Celery's `inspect reserved` needs
the remote control the workers turn off). The layout facts relied on are listed below (`KOMBU_LAYOUT`, and the
message's own layout in `job_id_of`); tests/worker/test_broker_layout.py publishes through the real Celery app
to a real Redis and fails, naming the fact, when kombu writes something else.

kombu's Redis transport keeps a queue's ready messages in a list named after
the queue (plus `<queue>\\x06\\x16<p>` lists for priorities 3, 6, 9), and a
message a worker has reserved but not yet acked in the `unacked` hash (tag ->
[message, exchange, routing key]) with its reservation time in the
`unacked_index` sorted set. Each message is JSON whose base64 `body` is
Celery's `[args, kwargs, embed]`; our args are `[job_id]`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable

from db.settings import mask_url
from worker.contract.celery_app import RUN_JOB

PRIORITY_SEPARATOR = "\x06\x16"  # a priority's list: f"{queue}{PRIORITY_SEPARATOR}{priority}"
PRIORITY_STEPS = (3, 6, 9)  # 0 is the plain list, named after the queue
UNACKED_KEY = "unacked"  # hash: delivery tag -> JSON [message, exchange, routing key] of a reserved message
UNACKED_INDEX_KEY = "unacked_index"  # sorted set: delivery tag -> when it was reserved (epoch seconds)
BODY_ENCODING = "base64"  # a message's properties.body_encoding; the decoded body is Celery's JSON [args, ...]
# The attributes of kombu.transport.redis.Channel that fix the layout above, with the values relied on.
KOMBU_LAYOUT = {
    "sep": PRIORITY_SEPARATOR,
    "priority_steps": (0, *PRIORITY_STEPS),
    "unacked_key": UNACKED_KEY,
    "unacked_index_key": UNACKED_INDEX_KEY,
    "body_encoding": BODY_ENCODING,
}


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached; the message names the (masked) URL."""


def redis_client(url: str):
    import redis

    if not url.startswith(("redis://", "rediss://")):
        raise BrokerUnavailable(f"unsupported broker {mask_url(url)}: wattsweep uses Redis (redis://host:6379/0)")
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)


def check_broker(url: str) -> None:
    """Raise BrokerUnavailable (one line, password masked) unless Redis answers PING."""
    import redis

    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError as error:
        raise BrokerUnavailable(f"cannot reach the broker at {mask_url(url)}: {error}") from None
    finally:
        client.close()


def decode_job_id(raw: bytes | str) -> int | None:
    """The job id inside one stored kombu message, or None if it is not a `run_job` message."""
    try:
        return job_id_of(json.loads(raw))
    except ValueError:
        return None


def job_id_of(message: dict) -> int | None:
    try:
        if message.get("headers", {}).get("task") != RUN_JOB:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == BODY_ENCODING:
            body = base64.b64decode(body)
        job_id = json.loads(body)[0][0]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return job_id if isinstance(job_id, int) and not isinstance(job_id, bool) else None


def queue_keys(queue: str) -> tuple[str, ...]:
    """The Redis lists that hold a queue's ready messages (plain, then each priority step)."""
    return (queue, *(f"{queue}{PRIORITY_SEPARATOR}{p}" for p in PRIORITY_STEPS))


def queue_lengths(client, queues: Iterable[str]) -> dict[str, int]:
    """Ready messages per queue (LLEN of its lists, one round trip): a few bytes, however long the queues are."""
    queues = list(queues)
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for key in queue_keys(queue):
            pipe.llen(key)
    lengths = iter(pipe.execute())
    return {queue: sum(next(lengths) for _ in queue_keys(queue)) for queue in queues}


def ready_job_ids(client, queues: Iterable[str], *, page: int = 10_000) -> set[int]:
    """Job ids waiting in these queues (not yet taken by any worker). Reads every message (~1 KB each): costly
    at a long queue, which is why reconcile compares counts first (queue_lengths) and comes here only when
    they disagree. Read in pages, so that 100,000 messages never sit in memory at once."""
    found: set[int] = set()
    for queue in queues:
        for key in queue_keys(queue):
            start = 0
            while raws := client.lrange(key, start, start + page - 1):
                found.update(job_id for raw in raws if (job_id := decode_job_id(raw)) is not None)
                start += page
    return found


def reserved_job_ids(client, *, within_s: float, now: float | None = None) -> set[int]:
    """Job ids a worker took from a queue in the last `within_s` seconds and has not acked yet."""
    since = (now or time.time()) - within_s
    tags = client.zrangebyscore(UNACKED_INDEX_KEY, since, "+inf")
    if not tags:
        return set()
    found = set()
    for entry in client.hmget(UNACKED_KEY, tags):
        if entry is None:
            continue
        try:
            job_id = job_id_of(json.loads(entry)[0])
        except (ValueError, IndexError, TypeError):
            continue
        if job_id is not None:
            found.add(job_id)
    return found
