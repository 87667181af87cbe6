"""The Redis backend: redis-py asyncio with every timeout and retry set explicitly.

Reconnection is redis-py's own (a broken connection is dropped and the next command opens
a new one); what this module adds is an up/down state with one log line per change, and
the mapping of redis-py's errors onto the cache layer's. Only connection errors are
retried, never timeouts: a write that timed out may have been applied, and running a
LPUSH twice would duplicate a signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from loguru import logger
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from .backend import DeleteOp, PushOp, RawValue, SetOp, WriteOp, check_types
from .errors import CacheError, CacheTypeError, CacheUnavailable

T = TypeVar("T")

# Replies meaning "Redis is there but will not take this now": answered as unavailable.
_REFUSAL_TYPES = (rexc.OutOfMemoryError, rexc.ReadOnlyError, rexc.ExecAbortError,
                  rexc.MasterDownError, rexc.NoPermissionError)
_REFUSAL_WORDS = ("BUSY", "MISCONF", "NOREPLICAS")
_CAS_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class RedisOptions:
    """Connection behaviour; all of it explicit so no library default decides for us."""

    socket_timeout: float = 1.0  # per command read/write; a frozen Redis fails this fast
    connect_timeout: float = 1.0
    health_check_interval: int = 10  # PING a connection idle this long before using it
    retries: int = 1  # on connection errors only (restart, reset), never on timeouts
    backoff_base: float = 0.05
    backoff_cap: float = 0.5
    max_connections: int = 16
    pool_timeout: float = 1.0  # waiting for a free connection when all are busy
    scan_count: int = 1000  # COUNT hint per SCAN call
    scan_max_calls: int = 1000  # one SCAN pass never runs longer than this many calls
    client_name: str = "usdcop-exporter"


def redact_url(url: str) -> str:
    """`scheme://host:port/db` without credentials, for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{host}:{port}{parts.path or ''}"


class RedisBackend:
    """Storage on a Redis server (one connection pool per event loop)."""

    kind = "redis"

    def __init__(self, url: str, options: RedisOptions | None = None) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"redis url must be redis://, rediss:// or unix://, got {redact_url(str(url))!r}")
        self.url = url
        self.where = redact_url(url)
        self.options = options or RedisOptions()
        self.up: bool | None = None
        self._redis: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cas = None

    # -- connection and state ------------------------------------------------------------

    def _client(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            # Connections belong to the loop that made them: a new loop gets a new pool.
            o = self.options
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=o.max_connections,
                timeout=o.pool_timeout,
                socket_timeout=o.socket_timeout,
                socket_connect_timeout=o.connect_timeout,
                socket_keepalive=True,
                health_check_interval=o.health_check_interval,
                retry=Retry(
                    ExponentialBackoff(cap=o.backoff_cap, base=o.backoff_base),
                    o.retries,
                    supported_errors=(rexc.ConnectionError,),
                ),
                client_name=o.client_name,
                protocol=2,
            )
            self._redis = Redis(connection_pool=pool)
            self._loop = loop
            self._cas = self._redis.register_script(_CAS_SCRIPT)
        return self._redis

    def mark_down(self, reason: str) -> None:
        """Record unreachability; logs once per change."""
        if self.up is not False:
            logger.warning("redis {} unreachable: {}", self.where, reason)
        self.up = False

    def _mark_up(self) -> None:
        if self.up is False:
            logger.info("redis {} reachable again", self.where)
        elif self.up is None:
            logger.info("redis {} connected", self.where)
        self.up = True

    async def _call(self, what: str, fn: Callable[[Redis], Awaitable[T]]) -> T:
        try:
            result = await fn(self._client())
        except (rexc.ConnectionError, rexc.TimeoutError) as exc:
            self.mark_down(f"{type(exc).__name__}: {exc}")
            raise CacheUnavailable(f"redis {self.where} unavailable ({what}): {exc}") from exc
        except rexc.ResponseError as exc:
            text = str(exc)
            self._mark_up()
            if text.startswith("WRONGTYPE"):
                raise CacheTypeError(f"{what}: the key holds another Redis type") from exc
            if isinstance(exc, _REFUSAL_TYPES) or text.startswith(_REFUSAL_WORDS):
                raise CacheUnavailable(f"redis {self.where} refused {what}: {text}") from exc
            raise CacheError(f"redis {self.where} rejected {what}: {text}") from exc
        self._mark_up()
        return result

    async def close(self) -> None:
        """Close this loop's pool."""
        redis, self._redis = self._redis, None
        if redis is not None and self._loop is asyncio.get_running_loop():
            await redis.aclose(close_connection_pool=True)
        self._loop = None

    # -- the Backend interface -----------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """GET."""
        return await self._call(f"GET {key}", lambda r: r.get(key))

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """MGET (nil for missing keys and for other types)."""
        if not keys:
            return []
        return await self._call(f"MGET of {len(keys)} keys", lambda r: r.mget(list(keys)))

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """SET, with PX when the TTL is not 0."""
        px = _ttl_ms(ttl)
        await self._call(f"SET {key}", lambda r: r.set(key, value, px=px))

    async def delete(self, keys: Sequence[str]) -> int:
        """UNLINK (DEL without blocking Redis on large values)."""
        if not keys:
            return 0
        return await self._call(f"UNLINK of {len(keys)} keys", lambda r: r.unlink(*keys))

    async def exists(self, key: str) -> bool:
        """EXISTS."""
        return bool(await self._call(f"EXISTS {key}", lambda r: r.exists(key)))

    async def scan(self, pattern: str, limit: int | None = None) -> list[str]:
        """SCAN MATCH, bounded by `limit` keys and `scan_max_calls` calls."""
        found: list[str] = []
        cursor, calls = 0, 0
        while True:
            cursor, batch = await self._call(
                f"SCAN {pattern}",
                lambda r, c=cursor: r.scan(c, match=pattern, count=self.options.scan_count),
            )
            calls += 1
            found.extend(k.decode("utf-8", "replace") for k in batch)
            if limit is not None and len(found) >= limit:
                return found[:limit]
            if cursor == 0 or calls >= self.options.scan_max_calls:
                return found

    async def list_range(self, key: str, start: int, stop: int) -> list[bytes]:
        """LRANGE."""
        return await self._call(f"LRANGE {key}", lambda r: r.lrange(key, start, stop))

    async def list_len(self, key: str) -> int:
        """LLEN."""
        return await self._call(f"LLEN {key}", lambda r: r.llen(key))

    async def execute(self, ops: Sequence[WriteOp]) -> list[int]:
        """MULTI/EXEC; list targets are WATCHed and type-checked first so nothing half-applies."""
        return await self._call("MULTI/EXEC", lambda r: self._transaction(r, ops))

    async def _transaction(self, r: Redis, ops: Sequence[WriteOp]) -> list[int]:
        pushed = list(dict.fromkeys(op.key for op in ops if isinstance(op, PushOp)))
        for _attempt in range(10):
            async with r.pipeline(transaction=True) as pipe:
                try:
                    lists: dict[str, list[Any]] = {}
                    if pushed:
                        # Under WATCH: if any of these change before EXEC, EXEC does nothing.
                        await pipe.watch(*pushed)
                        kinds = {k: (await pipe.type(k)).decode() for k in pushed}
                        check_types(ops, kinds)
                        for key in pushed:
                            if kinds[key] == "list":
                                lists[key] = [await pipe.lindex(key, 0), await pipe.llen(key)]
                        pipe.multi()
                    plan = _plan(ops, lists)
                    for op, send in zip(ops, plan, strict=True):
                        if not send:
                            continue
                        if isinstance(op, SetOp):
                            pipe.set(op.key, op.value, px=_ttl_ms(op.ttl))
                        elif isinstance(op, DeleteOp):
                            pipe.unlink(op.key)
                        else:
                            pipe.lpush(op.key, op.value)
                            pipe.ltrim(op.key, 0, op.cap - 1)
                    replies = await pipe.execute() if any(plan) else []
                except rexc.WatchError:
                    continue  # a list target changed under us: look at it again
            return _results(ops, plan, replies, lists)
        raise CacheError("MULTI/EXEC: list keys kept changing during 10 attempts")

    async def compare_and_delete(self, key: str, expected: bytes) -> bool:
        """Delete `key` if it still holds `expected` (a server-side script: atomic)."""
        async def run(r: Redis) -> Any:
            return await self._cas(keys=[key], args=[expected], client=r)
        return bool(await self._call(f"compare-and-delete {key}", run))

    async def read_many(self, keys: Sequence[str], max_bytes: int,
                        lists: Collection[str] = ()) -> list[RawValue]:
        """TYPE and GETRANGE of every key (plus LINDEX 0 and LLEN of `lists`) in one MULTI/EXEC."""
        if not keys:
            return []

        async def run(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.type(key)
                    pipe.getrange(key, 0, max_bytes)  # an error reply when it is not a string
                    if key in lists:
                        pipe.lindex(key, 0)
                        pipe.llen(key)
                return await pipe.execute(raise_on_error=False)

        replies = iter(await self._call(f"reading {len(keys)} keys", run))
        out = []
        for key in keys:
            kind, data = next(replies), next(replies)
            head, length = (next(replies), next(replies)) if key in lists else (None, 0)
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind == "none":
                out.append(RawValue("missing"))
            elif kind == "string":
                out.append(RawValue("string", data, len(data), len(data) > max_bytes))
            elif kind == "list" and key in lists:
                out.append(RawValue("list", head, int(length)))
            elif kind == "list":
                out.append(RawValue("list"))
            else:
                out.append(RawValue("other"))
        return out


def _ttl_ms(ttl: float) -> int | None:
    return None if ttl == 0 else max(1, round(ttl * 1000))


def _plan(ops: Sequence[WriteOp], lists: dict[str, list[Any]]) -> list[bool]:
    """Which ops to send: a skip_if_head push whose value already heads its list is not."""
    heads = {k: v[0] for k, v in lists.items()}
    plan = []
    for op in ops:
        if isinstance(op, PushOp):
            send = not (op.skip_if_head and heads.get(op.key) == op.value)
            heads[op.key] = op.value
        else:
            send = True
            if isinstance(op, DeleteOp | SetOp):
                heads.pop(op.key, None)
        plan.append(send)
    return plan


def _results(ops: Sequence[WriteOp], plan: list[bool], replies: list[Any],
             lists: dict[str, list[Any]]) -> list[int]:
    out, i = [], 0
    for op, sent in zip(ops, plan, strict=True):
        if isinstance(op, PushOp):
            if sent:
                out.append(min(int(replies[i]), op.cap))
                i += 2
            else:
                out.append(int(lists[op.key][1]))
        elif isinstance(op, SetOp):
            out.append(1)
            i += 1
        else:
            out.append(int(replies[i]))
            i += 1
    return out
