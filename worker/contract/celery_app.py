"""The Celery app, configured for long, expensive GPU jobs whose results live in our own tables.

Light on purpose (Celery only, no torch): the scheduler builds the same app to
send job ids by task name. `make_app()` reads the settings; tests and the
benchmark pass a broker URL of their own.
"""

from __future__ import annotations

import re

from celery import Celery
from kombu import uuid

PERSISTENT = 2  # kombu's delivery mode for a message that survives a broker restart (Celery's default)

RUN_JOB = "wattsweep.run_job"  # the one task; messages carry a job id only
# Redis keys kombu and Celery use themselves: a queue by one of these names would corrupt them.
RESERVED_QUEUE_NAMES = frozenset({"unacked", "unacked_index", "unacked_mutex", "celery", "celeryev"})
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$", re.ASCII)  # a Redis key and an ACL key pattern: ASCII only
_GROUP_SUFFIX = re.compile(r"-x(\d+)\Z", re.ASCII)  # job_queue's suffix for a group's queue: never part of a class


def queue_name_problem(name: str) -> str | None:
    """Why `name` cannot be a hardware class (= the name of its queue for one GPU), or None if it can. A class
    `h100-x4` would share the queue of `h100`'s jobs needing 4 GPUs (job_queue), so `-x<digits>` is refused."""
    if not _QUEUE_NAME.match(name):
        return f"queue {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
    if name in RESERVED_QUEUE_NAMES or name.startswith("_kombu"):
        return f"queue {name!r} is a name Celery uses itself; pick another hardware class"
    if group := _GROUP_SUFFIX.search(name):
        return (f"hardware class {name!r} ends in {group[0]!r}: that is the queue of class "
                f"{name[:group.start()]!r} for jobs that need {group[1]} GPUs; pick another name")
    return None


def job_queue(hardware_class: str, gpus: int = 1) -> str:
    """The queue of jobs that need `gpus` GPUs of a hardware class, and of the workers that hold that many.

    One GPU: the class itself (`h100`), as before device groups. A group of N: `h100-x4`. A job needing N GPUs
    goes only to workers holding exactly N, so that no GPU of a group sits idle under a smaller job.
    """
    if gpus < 1:
        raise ValueError(f"a job needs at least one GPU, not {gpus}")
    return hardware_class if gpus == 1 else f"{hardware_class}-x{gpus}"


def make_app(broker_url: str | None = None, visibility_timeout_s: float | None = None) -> Celery:
    from db.settings import get_settings

    settings = get_settings()
    broker_url = broker_url or settings.broker_url
    visibility_timeout_s = int(visibility_timeout_s or settings.visibility_timeout_s)
    app = Celery("wattsweep", broker=broker_url, set_as_current=False)
    app.conf.update(
        # Only JSON crosses the broker: a pickled message could run code on a GPU node.
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        # Ack after the job, not on receipt: a worker that dies mid-job leaves its message to be delivered again.
        task_acks_late=True,
        # A pool child that dies (OOM kill, CUDA segfault) gets its message requeued, not acked as done (prefork;
        # our workers run solo, where a dead process simply never acks and the lease + reconcile take over).
        task_reject_on_worker_lost=True,
        # Reserve one job at a time: a job is minutes to hours; a prefetched one would wait behind it, unstealable.
        worker_prefetch_multiplier=1,
        # One job per worker process: each worker owns exactly one GPU, and two jobs on it would skew both meters.
        worker_concurrency=1,
        # Results live in Postgres (runs, measurements); Celery keeps none, so there is no result backend to fill.
        task_ignore_result=True,
        result_backend=None,
        # Task events for Flower (received/started/succeeded per job). No "sent" events: they would double the
        # Redis writes of a 10,000-job submit, and `wattsweep status` already shows what is waiting.
        worker_send_task_events=True,
        task_send_sent_event=False,
        # No remote control: whoever can publish to the broker could otherwise shut down every worker, change
        # its queues or revoke jobs (Celery's pidbox). Workers are stopped by SIGTERM; the database says what
        # is left to do. Flower then shows task events and worker heartbeats, not pools or control buttons.
        worker_enable_remote_control=False,
        # Redis redelivers an unacked message after this many seconds: it must exceed the longest job, or a job
        # still running would be handed to a second worker. Celery and kombu read it in each of these places.
        broker_transport_options={"visibility_timeout": visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": visibility_timeout_s},
        visibility_timeout=visibility_timeout_s,
        # On a lost broker connection a late-ack message is redelivered; cancel the running copy rather than
        # let two workers measure the same job (the lease drops the second copy anyway).
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # `wattsweep worker` checks the broker itself and exits 2 with a clear line; after that, keep retrying.
        broker_connection_retry_on_startup=True,
        # A job is not a unit Celery should time out: CodeCarbon windows must close in `finally`, not be killed.
        task_time_limit=None,
        task_soft_time_limit=None,
        # Our log lines (job claimed, dropped, handed back) stay visible next to Celery's.
        worker_hijack_root_logger=False,
    )
    return app


class SendFailed(RuntimeError):
    """Publishing stopped part-way (the broker went away): `sent` messages are known to be in the broker."""

    def __init__(self, sent: int, cause: BaseException) -> None:
        super().__init__(" ".join(f"{type(cause).__name__}: {cause}".split()))  # one line: driver errors span several
        self.sent = sent


SEND_BATCH = 1000


class _JobMessages:
    """What app.send_task(RUN_JOB, args=[job id], queue=...) publishes, at a fraction of its cost: Celery builds
    one task message (protocol 2) as a template, and each job's message is that template with its own task id
    (headers `id` and `root_id`, property `correlation_id`), args (the body's first element) and `argsrepr`:
    the fields Celery's protocol 2 documents as per-task. kombu then publishes it to the queue through the
    default exchange, persistent, JSON, as send_task would. send_task's per-call routing, option merging,
    signals and repr of the args were most of a send's cost. tests/worker/test_broker_layout.py checks that a
    message sent this way is the one send_task sends, but for its ids."""

    def __init__(self, app: Celery) -> None:
        self.reply_to = app.thread_oid
        self.headers, self.properties, body, _ = app.amqp.create_task_message(
            "template", RUN_JOB, [0], {}, reply_to=self.reply_to, ignore_result=None)
        self.kwargs, self.embed = body[1], body[2]

    def publish(self, producer, dispatch) -> None:
        task_id = uuid()
        headers = dict(self.headers, id=task_id, root_id=task_id, argsrepr=repr([dispatch.job_id]))
        producer.publish(([dispatch.job_id], self.kwargs, self.embed), exchange="",
                         routing_key=dispatch_queue(dispatch), serializer="json", headers=headers,
                         delivery_mode=PERSISTENT, declare=[], retry=False,
                         **dict(self.properties, correlation_id=task_id))


def dispatch_queue(dispatch) -> str:
    """The queue a `db.queue.reconcile.Dispatch` goes to: its hardware class's, for workers holding its GPUs."""
    return job_queue(dispatch.hardware_class, dispatch.gpus)


def send_job_ids(app: Celery, dispatches) -> int:
    """Publish one message per job (body: the job id only) to its queue (`dispatch_queue`); returns the count.

    One producer and kombu's publish batches (Redis pipelines of 1,000 LPUSHes) keep 10,000 jobs well under
    a few seconds. `dispatches` are `db.queue.reconcile.Dispatch`-like: `.job_id`, `.hardware_class`, `.gpus`
    (a worker re-sending a job of its own queue may give that queue's name as the class, with one GPU). If the
    broker fails part-way, SendFailed says how many batches went through whole (the failing batch counts as not
    sent: sending it again costs a duplicate message, which the leases make harmless; losing it would cost a job).
    """
    dispatches = list(dispatches)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            # Each queue is declared once, not once per message (kombu's per-message declare check and retry
            # wrapper were two thirds of a send: 10,000 messages 3.0 s -> see bench/scale.py); a failure is ours
            # to report (SendFailed), not kombu's to retry message by message.
            for queue in dict.fromkeys(map(dispatch_queue, dispatches)):
                producer.maybe_declare(app.amqp.queues[queue])
            messages = _JobMessages(app)
            for start in range(0, len(dispatches), SEND_BATCH):
                chunk = dispatches[start : start + SEND_BATCH]
                with producer.batch(SEND_BATCH):  # flushed when the block ends
                    for dispatch in chunk:
                        messages.publish(producer, dispatch)
                sent += len(chunk)
    except Exception as error:  # kombu/redis raise their own connection errors; all mean the same here
        raise SendFailed(sent, error) from None
    return sent
