"""The local stack holds the background work a gateway request causes (rule targets of the events
it publishes) beyond its first START_AT_ONCE jobs until the request has answered, and starts
everything else's at once."""

from __future__ import annotations

import contextvars
import threading

import pytest

from sluice.local.stack import _HELD_JOBS, START_AT_ONCE, LocalStack, StackOptions

TARGET = "arn:aws:lambda:us-east-1:123456789012:function:AnomalyDetection"


def recording_stack(tmp_path, ran: list) -> LocalStack:
    stack = LocalStack(StackOptions(data_dir=tmp_path, ephemeral=True))
    stack._invoke_logged = lambda target, event, submitted: ran.append(event["n"])
    return stack


def dispatch_one_past_the_first(stack: LocalStack) -> None:
    """A request's START_AT_ONCE jobs that start at once, and one more that is held."""
    for n in range(START_AT_ONCE + 1):
        stack.dispatch(TARGET, {"n": n})


def test_a_request_s_first_jobs_start_at_once_and_the_rest_once_it_has_answered(tmp_path):
    ran: list = []
    stack = recording_stack(tmp_path, ran)
    held_while_answering: list[int] = []

    def handler(function: str, event: dict) -> dict:
        dispatch_one_past_the_first(stack)
        # a sync route runs on a worker thread that AnyIO gives a copy of the request's context
        last = {"n": START_AT_ONCE + 1}
        worker = threading.Thread(target=contextvars.copy_context().run, args=(stack.dispatch, TARGET, last))
        worker.start()
        worker.join()
        held_while_answering.append(len(_HELD_JOBS.get().held))
        ran.append("answered")
        return {"statusCode": 200}

    stack.registry.invoke = handler
    assert stack.answer("RunsFunction", {}) == {"statusCode": 200}
    stack._pool.shutdown(wait=True)
    assert held_while_answering == [2]
    answered = ran.index("answered")
    assert ran[answered + 1 :] == [START_AT_ONCE, START_AT_ONCE + 1]  # the held ones, in order
    assert sorted(n for n in ran if n != "answered") == list(range(START_AT_ONCE + 2))
    assert stack.background.pending == START_AT_ONCE + 2  # counted from the event (not finished here)


def test_a_failing_request_still_starts_its_held_work_and_other_threads_are_not_held(tmp_path):
    ran: list = []
    stack = recording_stack(tmp_path, ran)

    def failing(function: str, event: dict) -> dict:
        dispatch_one_past_the_first(stack)
        raise RuntimeError("the handler failed")

    stack.registry.invoke = failing
    with pytest.raises(RuntimeError):
        stack.answer("RunsFunction", {})
    # A schedule or a background function publishing on its own thread is not held
    outside = threading.Thread(target=stack.dispatch, args=(TARGET, {"n": "schedule"}))
    outside.start()
    outside.join()
    stack._pool.shutdown(wait=True)
    assert sorted(map(str, ran)) == sorted(map(str, [*range(START_AT_ONCE + 1), "schedule"]))


def test_work_held_while_the_stack_stops_is_dropped_and_counted_as_failed(tmp_path):
    ran: list = []
    stack = recording_stack(tmp_path, ran)

    def handler(function: str, event: dict) -> dict:
        dispatch_one_past_the_first(stack)
        stack._pool.shutdown(wait=True)  # the stack stops while the request runs
        return {"statusCode": 200}

    stack.registry.invoke = handler
    assert stack.answer("RunsFunction", {}) == {"statusCode": 200}
    assert sorted(ran) == list(range(START_AT_ONCE))
    assert stack.background.failed == 1
    assert stack.background.pending == START_AT_ONCE  # the started ones (the fake does not finish them)
