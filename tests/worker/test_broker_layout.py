"""kombu's Redis layout is what worker/contract/broker.py reads: a real message, published through the real
Celery app to a real Redis, then reserved through kombu as a worker reserves it.

Each failure names the layout fact that changed (list names, priority lists, body encoding, the `unacked`
hash and its index), so that a kombu upgrade that moves one is caught here, not by a reconcile that sends
every waiting job again or none of the lost ones.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis

from db.queue.reconcile import Dispatch
from tests.distributed.conftest import LOCK_KEY, REDIS_URL, redis_db  # noqa: F401  (a fixture)
from worker.contract.broker import (
    BODY_ENCODING,
    KOMBU_LAYOUT,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    decode_job_id,
    queue_keys,
    queue_lengths,
    ready_job_ids,
    reserved_job_ids,
)
from worker.contract.celery_app import RUN_JOB, make_app, send_job_ids

QUEUE = "layout-q"


@pytest.fixture
def broker(request):
    url = f"{REDIS_URL}/{request.getfixturevalue('redis_db')}"
    client = redis.Redis.from_url(url)
    yield make_app(url), client
    client.close()


def message_keys(client) -> set[str]:
    """The Redis keys that hold messages (kombu's bindings and Celery's own keys left out)."""
    return {key.decode() for key in client.keys("*")} - {LOCK_KEY} - {
        key.decode() for key in client.keys("_kombu*")}


@pytest.mark.parametrize("attribute", sorted(KOMBU_LAYOUT))
def test_kombu_redis_channel_still_declares_the_layout(attribute):
    from kombu.transport.redis import Channel

    value = getattr(Channel, attribute, "<missing>")
    value = tuple(value) if isinstance(value, list) else value
    assert value == KOMBU_LAYOUT[attribute], (
        f"kombu.transport.redis.Channel.{attribute} is {value!r}, not {KOMBU_LAYOUT[attribute]!r}: kombu's Redis "
        "layout changed under worker/contract/broker.py")


def test_a_published_job_lies_in_the_queue_list_as_broker_reads_it(broker):
    app, client = broker
    assert send_job_ids(app, [Dispatch(41, QUEUE)]) == 1
    assert message_keys(client) == {QUEUE}, (
        f"kombu wrote the message under {message_keys(client)}, not the list {QUEUE!r} named after its queue")
    raw = client.lindex(QUEUE, 0)
    message = json.loads(raw)
    assert message["headers"]["task"] == RUN_JOB, "Celery no longer names the task in the message's headers.task"
    encoding = message["properties"].get("body_encoding")
    assert encoding == BODY_ENCODING, f"kombu encodes message bodies as {encoding!r}, not {BODY_ENCODING!r}"
    args = json.loads(base64.b64decode(message["body"]))[0]
    assert args == [41], f"Celery's body is no longer [args, kwargs, embed] with args [job_id]: {args!r}"
    assert decode_job_id(raw) == 41
    assert queue_lengths(client, [QUEUE]) == {QUEUE: 1} and ready_job_ids(client, [QUEUE]) == {41}


def test_each_priority_goes_to_the_list_broker_reads(broker):
    app, client = broker
    for job_id, priority in ((50, 0), (53, 3), (56, 6), (59, 9)):
        app.send_task(RUN_JOB, args=[job_id], queue=QUEUE, priority=priority)
    expected = set(queue_keys(QUEUE))
    assert message_keys(client) == expected, (
        f"kombu's priority lists are {sorted(message_keys(client))}, not {sorted(expected)} (queue_keys)")
    assert queue_lengths(client, [QUEUE]) == {QUEUE: 4} and ready_job_ids(client, [QUEUE]) == {50, 53, 56, 59}


def test_a_reserved_job_lies_in_the_unacked_hash_as_broker_reads_it(broker):
    app, client = broker
    send_job_ids(app, [Dispatch(77, QUEUE)])
    before = time.time()
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        reserved = channel.basic_get(QUEUE, no_ack=False)  # what a worker's consumer does with late acks
        assert reserved is not None, "kombu gave back nothing from the queue it was just sent to"
        entries = client.hgetall(UNACKED_KEY)
        assert len(entries) == 1, f"kombu keeps reserved messages elsewhere than the {UNACKED_KEY!r} hash"
        tag, entry = next(iter(entries.items()))
        message, _exchange, routing_key = json.loads(entry)
        assert decode_job_id(json.dumps(message)) == 77 and routing_key == QUEUE, (
            f"an {UNACKED_KEY!r} entry is no longer [message, exchange, routing key]: {entry[:200]!r}")
        at = client.zscore(UNACKED_INDEX_KEY, tag)
        assert at is not None and before - 1 <= at <= time.time() + 1, (
            f"{UNACKED_INDEX_KEY!r} no longer holds each reserved tag with its reservation time (epoch s): {at!r}")
        assert reserved_job_ids(client, within_s=60) == {77} and ready_job_ids(client, [QUEUE]) == set()
        channel.basic_ack(reserved.delivery_tag)
    assert client.hlen(UNACKED_KEY) == 0 and reserved_job_ids(client, within_s=60) == set()


def test_a_job_message_is_the_one_send_task_sends_but_for_its_task_id(broker):
    """send_job_ids builds each message from one template (worker.contract.celery_app._JobMessages) instead of
    calling send_task per job: the two must put the same message in the queue, up to the task's own id."""
    app, client = broker
    app.send_task(RUN_JOB, args=[7], queue=QUEUE)
    send_job_ids(app, [Dispatch(7, QUEUE), Dispatch(8, QUEUE)])
    by_send_task, ours, ours_8 = [json.loads(raw) for raw in reversed(client.lrange(QUEUE, 0, -1))]

    def without_ids(message: dict) -> dict:
        message = json.loads(json.dumps(message))
        task_id = message["headers"]["id"]
        assert message["headers"]["root_id"] == message["properties"]["correlation_id"] == task_id
        message["headers"].update(id=None, root_id=None)
        message["properties"].update(correlation_id=None, delivery_tag=None)
        return message

    assert without_ids(ours) == without_ids(by_send_task)
    assert ours["headers"]["id"] != ours_8["headers"]["id"] != by_send_task["headers"]["id"]
    assert [decode_job_id(json.dumps(m)) for m in (by_send_task, ours, ours_8)] == [7, 7, 8]
    assert ours_8["headers"]["argsrepr"] == "[8]"
