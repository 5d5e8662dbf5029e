"""The local stack holds the background work a gateway request causes (rule targets of the events
it publishes) until the request has answered, and starts everything else's at once."""

from __future__ import annotations

import contextvars
import threading

import pytest

from sluice.local.stack import _HELD_JOBS, LocalStack, StackOptions

TARGET = "arn:aws:lambda:us-east-1:123456789012:function:AnomalyDetection"


def test_a_request_s_background_work_starts_once_it_has_answered(tmp_path):
    stack = LocalStack(StackOptions(data_dir=tmp_path, ephemeral=True))
    order: list[str] = []
    stack._invoke_logged = lambda target, event, submitted: order.append(f"background {event['n']}")
    seen_while_answering: list[int] = []

    def handler(function: str, event: dict) -> dict:
        stack.dispatch(TARGET, {"n": 1})
        # a sync route runs on a worker thread that AnyIO gives a copy of the request's context
        worker = threading.Thread(
            target=contextvars.copy_context().run, args=(stack.dispatch, TARGET, {"n": 2})
        )
        worker.start()
        worker.join()
        seen_while_answering.append(len(_HELD_JOBS.get()))  # held, not in the pool
        order.append("answered")
        return {"statusCode": 200}

    stack.registry.invoke = handler
    assert stack.answer("RunsFunction", {}) == {"statusCode": 200}
    stack._pool.shutdown(wait=True)
    assert seen_while_answering == [2]
    assert order == ["answered", "background 1", "background 2"]
    assert stack.background.pending == 2  # counted from the event (the fake job does not finish it)


def test_a_failing_request_still_starts_its_background_work_and_other_threads_are_not_held(tmp_path):
    stack = LocalStack(StackOptions(data_dir=tmp_path, ephemeral=True))
    ran: list[str] = []
    stack._invoke_logged = lambda target, event, submitted: ran.append(event["from"])

    def failing(function: str, event: dict) -> dict:
        stack.dispatch(TARGET, {"from": "request"})
        raise RuntimeError("the handler failed")

    stack.registry.invoke = failing
    with pytest.raises(RuntimeError):
        stack.answer("RunsFunction", {})
    # A schedule or a background function publishing on its own thread is not held
    outside = threading.Thread(target=stack.dispatch, args=(TARGET, {"from": "schedule"}))
    outside.start()
    outside.join()
    stack._pool.shutdown(wait=True)
    assert sorted(ran) == ["request", "schedule"]


def test_work_held_while_the_stack_stops_is_dropped_and_counted_as_failed(tmp_path):
    stack = LocalStack(StackOptions(data_dir=tmp_path, ephemeral=True))

    def handler(function: str, event: dict) -> dict:
        stack.dispatch(TARGET, {"n": 1})
        stack._pool.shutdown(wait=True)  # the stack stops while the request runs
        return {"statusCode": 200}

    stack.registry.invoke = handler
    assert stack.answer("RunsFunction", {}) == {"statusCode": 200}
    assert (stack.background.pending, stack.background.failed) == (0, 1)
