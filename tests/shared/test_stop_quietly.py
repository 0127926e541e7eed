"""Stopping a Kafka client whose broker went away must not stop the worker (issue 16): aiokafka's
consumer can raise the CancelledError of its own fetch task out of `stop()`, which escaped
`contextlib.suppress(Exception)` and ended the pledges worker with exit code 1 when the broker
was killed."""

from __future__ import annotations

import asyncio

import pytest

from shared import kafka


async def _raises(exc: BaseException) -> None:
    await asyncio.sleep(0)
    raise exc


async def test_a_stop_raising_its_own_tasks_cancellation_or_an_error_is_absorbed() -> None:
    await kafka.stop_quietly(_raises(asyncio.CancelledError()))
    await kafka.stop_quietly(_raises(ConnectionResetError("broker gone")))
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_stop_that_hangs_is_given_up_after_its_timeout() -> None:
    await kafka.stop_quietly(asyncio.sleep(30), timeout=0.05)


async def test_the_callers_own_cancellation_still_cancels_it() -> None:
    async def stopping() -> None:
        await kafka.stop_quietly(asyncio.sleep(30), timeout=10)

    task = asyncio.create_task(stopping())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
