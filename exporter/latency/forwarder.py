"""Forwards library latency records to a sidecar's POST /api/health/latency from a daemon thread.

A thread rather than an asyncio task because the library is also called from plain
synchronous code with no event loop. The caller only ever does a non-blocking put into a
bounded queue; when the queue is full, or the sidecar stays away or refuses a batch, the
records are dropped, counted (usdcop_forwarder_dropped_total) and logged (rate-limited).

The engine's cache reads ride along: `count_cache` adds to counts kept under a lock, and
each batch carries the counts gathered since the last one as `cache_requests`. Counts of a
batch that could not be delivered are lost, and logged with the records' drop.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from loguru import logger

from .._version import __version__
from .record import LatencyRecord

if TYPE_CHECKING:
    from .metrics import LatencyMetrics

ROUTE = "/api/health/latency"
MAX_BATCH = 1000  # the sidecar refuses larger batches
_WAKE = object()  # queued by flush()/close() to cut a lingering batch short
_CACHE = object()  # queued when cache counts start gathering: they are sent like a record
_LOG_EVERY = 60.0  # seconds between two drop warnings


class Forwarder:
    """Batches records to `{url}/api/health/latency` (bearer `token`); never blocks the caller."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        metrics: LatencyMetrics | None = None,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        linger: float = 1.0,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"forwarding url must be http(s)://host[:port][/path], got {url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("forwarding url must not carry a query, fragment or credentials")
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
        if max_queue < 1 or linger < 0 or timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("max_queue >= 1, linger >= 0, timeout > 0, retries >= 0, backoff >= 0")
        self.url = url.rstrip("/") + ROUTE
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + ROUTE
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"usdcop-exporter-forwarder/{__version__}",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._metrics = metrics
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._linger = linger
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._hurry = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._conn: http.client.HTTPConnection | None = None
        self._closed = False
        self.sent = 0
        self.dropped = 0
        self._last_log = float("-inf")
        self._unlogged = 0
        self.cache_reads_dropped = 0
        self._unlogged_reads = 0
        self._drop_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache_counts: dict[tuple[str, str], int] = {}

    def count_cache(self, cache: str, hit: bool) -> None:
        """Count one cache read of the engine, for the next batch; never blocks."""
        if self._closed:
            return
        if self._thread is None or self._pid != os.getpid():
            self._start()  # in a forked child this also forgets the parent's counts
        key = (cache, "hit" if hit else "miss")
        with self._cache_lock:
            first = not self._cache_counts
            self._cache_counts[key] = self._cache_counts.get(key, 0) + 1
        if first:
            try:
                self._queue.put_nowait(_CACHE)
            except queue.Full:
                pass  # a full queue is sent at once, and these counts with it

    def _take_cache_counts(self) -> list[dict]:
        with self._cache_lock:
            counts, self._cache_counts = self._cache_counts, {}
        return [{"cache": c, "result": r, "count": n} for (c, r), n in sorted(counts.items())]

    def submit(self, record: LatencyRecord) -> bool:
        """Queue one record for sending; False (counted as dropped) when the buffer is full."""
        if self._closed:
            self._drop(1, "forwarder closed")
            return False
        if self._thread is None or self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1, f"buffer full ({self._max_queue} records)")
            return False
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid != os.getpid():  # forked: the parent's thread and queue do not exist here
                self._pid = os.getpid()
                self._queue = queue.Queue(self._max_queue)
                self._conn = None
                with self._cache_lock:  # the parent's counts are the parent's to send
                    self._cache_counts = {}
            self._thread = threading.Thread(target=self._run, name="usdcop-forwarder", daemon=True)
            self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record was sent or dropped; False when `timeout` ran out."""
        if self._thread is None or self._pid != os.getpid():
            return True
        self._hurry.set()
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # a full queue makes a full batch at once: nothing lingers
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                done.wait(remaining)
        self._hurry.clear()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to `timeout` seconds), then stop the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            try:
                self._queue.put_nowait(_WAKE)
            except queue.Full:
                pass
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch, wakes = self._collect()
            if batch:
                self._send(batch)
            for _ in range(len(batch) + wakes):
                self._queue.task_done()
        left = 0
        while True:  # stopping: whatever could not be sent in time is lost, and counted
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            left += item is not _WAKE and item is not _CACHE
            self._queue.task_done()
        if left:
            self._drop(left, "forwarder stopped")
        if self._conn is not None:
            self._conn.close()

    def _collect(self) -> tuple[list, int]:
        """Block for a first record, then gather more for up to `linger` seconds."""
        # A full batch, a flush or close ends the wait early.
        batch: list = []
        wakes = 0
        item = self._queue.get()
        if item is _WAKE:
            return batch, 1
        batch.append(item)
        deadline = time.monotonic() + self._linger
        while len(batch) < self._batch_size:
            remaining = deadline - time.monotonic()
            try:
                if self._hurry.is_set() or self._stop.is_set() or remaining <= 0:
                    item = self._queue.get_nowait()
                else:
                    item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _WAKE:
                wakes += 1
                if self._hurry.is_set() or self._stop.is_set():
                    continue  # take what is already queued, without waiting for more
                break
            batch.append(item)
        return batch, wakes

    def _send(self, batch: list) -> None:
        records = [r for r in batch if r is not _CACHE]
        payload: dict = {"records": [_as_json(r) for r in records]}
        if cache := self._take_cache_counts():
            payload["cache_requests"] = cache
        if not records and not cache:
            return
        batch = records
        body = json.dumps(payload, separators=(",", ":")).encode()
        problem = ""
        for attempt in range(self._retries + 1):
            if attempt and self._stop.wait(self._backoff * 2 ** (attempt - 1)):
                break
            try:
                status, data = self._post(body)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"sidecar unreachable: {type(exc).__name__}: {exc}"
                continue
            if status == 200:
                self.sent += len(batch)
                return
            problem = f"sidecar answered HTTP {status}: {data[:200].decode('utf-8', 'replace')}"
            if 400 <= status < 500 and status not in (408, 429):
                break  # refused for good: sending it again would be refused again
        self._drop(len(batch), problem or "forwarder stopped",
                   sum(c["count"] for c in payload.get("cache_requests", ())))

    def _post(self, body: bytes) -> tuple[int, bytes]:
        reused = self._conn is not None
        for _ in range(2):
            if self._conn is None:
                cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._conn = cls(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", self._path, body, self._headers)
                response = self._conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if reused:  # the sidecar may have closed an idle keep-alive connection
                    reused = False
                    continue
                raise
            if response.will_close:
                self._conn.close()
                self._conn = None
            return response.status, data
        raise ConnectionError("unreachable")  # not reached: the loop returns or raises

    def _drop(self, n: int, why: str, reads: int = 0) -> None:
        if self._metrics is not None and n:
            self._metrics.forward_dropped(n)
        with self._drop_lock:  # callers' threads and the sender both drop
            self.dropped += n
            self._unlogged += n
            self.cache_reads_dropped += reads
            self._unlogged_reads += reads
            now = time.monotonic()
            if now - self._last_log < _LOG_EVERY:
                return
            count, total, lost = self._unlogged, self.dropped, self._unlogged_reads
            self._last_log = now
            self._unlogged = self._unlogged_reads = 0
        logger.warning(
            "latency forwarder to {} dropped {} record(s) and {} cache read count(s): {} "
            "({} records dropped in total)",
            self.url,
            count,
            lost,
            why,
            total,
        )


def _as_json(record: LatencyRecord) -> dict:
    out = {
        "service": record.service,
        "operation": record.operation,
        "latency_ms": record.latency_ms,
        "success": record.success,
    }
    if record.trace_id is not None:
        out["trace_id"] = record.trace_id
    return out
