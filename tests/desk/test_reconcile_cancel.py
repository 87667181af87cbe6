"""A reconciler cancelled during a run ends cancelled even when the cancel is swallowed on
the way (psycopg_pool catches CancelledError while it rolls back or resets a connection
handed back to it): the sidecar's shutdown never waits for the next interval."""

from __future__ import annotations

import asyncio

import pytest

from exporter.desk.reconcile import Reconciler
from tests.desk.test_reconcile import DESK_CONFIG


class SwallowingReconciler(Reconciler):
    """The real reconciler around a run whose store call swallows its cancellation."""

    entered: asyncio.Event

    async def run_once(self):
        self.entered.set()
        try:
            await asyncio.sleep(3600)  # the store call the cancel lands in ...
        except asyncio.CancelledError:
            pass  # ... and that returns as if nothing happened
        return None


@pytest.mark.parametrize("audit_logger", ["sqlite"], indirect=True)
async def test_a_swallowed_cancel_still_ends_the_loop(audit_logger, redis_client):
    assert DESK_CONFIG.reconciliation.interval >= 60
    job = SwallowingReconciler(audit_logger.store, redis_client, lambda: ("USDCOP",),
                               lambda: DESK_CONFIG)
    job.entered = asyncio.Event()
    task = asyncio.create_task(job.run())
    await job.entered.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=30)
    assert done, "the loop went on to sleep for the next interval"
    assert task.cancelled()
