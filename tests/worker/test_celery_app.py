"""The Celery settings the design relies on: JSON only, late acks, one job at a time, no results in Celery."""

from __future__ import annotations

import pytest

from worker.contract.celery_app import RUN_JOB, make_app


@pytest.fixture
def conf():
    return make_app("redis://127.0.0.1:6379/15", visibility_timeout_s=7200).conf


def test_only_json_crosses_the_broker(conf):
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_accept_content == ["json"] and conf.event_serializer == "json"


def test_long_gpu_job_settings(conf):
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert (conf.worker_prefetch_multiplier, conf.worker_concurrency) == (1, 1)
    assert conf.task_ignore_result and conf.result_backend is None
    assert conf.worker_send_task_events and not conf.task_send_sent_event
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    assert not conf.task_always_eager  # never eager: tests run real workers


def test_visibility_timeout_everywhere_celery_reads_it(conf):
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    assert conf.result_backend_transport_options["visibility_timeout"] == 7200
    assert conf.visibility_timeout == 7200


def test_messages_carry_the_job_id_only():
    app = make_app("redis://127.0.0.1:6379/15")
    message = app.amqp.create_task_message("id-1", RUN_JOB, [42], {})
    args, kwargs, _ = message.body
    assert (args, kwargs) == ([42], {})


@pytest.mark.parametrize(("name", "problem"), [
    ("a100", None), ("h100-sxm.80gb", None), ("cpu_x86", None),
    ("unacked", "Celery uses itself"), ("celery", "Celery uses itself"), ("_kombu.binding.x", "letters, digits"),
    ("a 100", "letters, digits"), ("", "letters, digits"),
    ("h100-x4", "the queue of class 'h100' for jobs that need 4 GPUs"), ("a-x12", "need 12 GPUs"),
    ("h100-x", None), ("h100-xl", None), ("h100x4", None), ("x4", None),
])
def test_queue_names(name, problem):
    from worker.contract.celery_app import queue_name_problem

    found = queue_name_problem(name)
    assert (found is None) if problem is None else (problem in found)


def test_a_broker_that_is_down_costs_a_message_never_the_unit_a_worker_holds():
    """A Redis restart while a worker is between units: recruiting waits (the queue reads as busy) and a message
    that cannot be sent is left to reconcile; both used to raise out of the task and drop its leased unit."""
    import types

    import redis

    from worker.contract.celery_app import SendFailed, send_job_ids
    from worker.process.celery_worker import WorkerContext, queue_length_or_busy

    dead = "redis://127.0.0.1:1/0"
    assert queue_length_or_busy(redis.Redis.from_url(dead, socket_connect_timeout=1), "a100") == 1
    app = make_app(dead)
    with pytest.raises(SendFailed) as raised:
        send_job_ids(app, [types.SimpleNamespace(job_id=7, queue="a100")])
    assert raised.value.sent == 0 and "\n" not in str(raised.value)
    runtime = types.SimpleNamespace(hardware_class="a100", gpus=1, sessions=None)
    context = types.SimpleNamespace(app=app, runtime=runtime, retry_for_s=0)
    WorkerContext.send_again(context, 7)  # logged, not raised: the database still has the job for reconcile
