"""GET /metrics rendering: the registry as Prometheus text or OpenMetrics, without stalling the loop.

prometheus_client's encoders format every sample of every family on each scrape; for a
thousand services that is tens of thousands of lines, during which the event loop is
stuck and every probe in flight reads a longer duration than it had. Here:

- a family that carries pre-rendered sample lines (a `exposition_text()` method, as
  `health.collector.ServiceFamily` has) is written as it is, after its owner's
  `refresh()` re-rendered what changed since the last scrape, in slices with the loop
  free between them;
- every other family goes through prometheus_client's own encoder, a batch of families
  at a time, yielding to the loop whenever a slice of time is used up;
- the body goes out as a payload of those pieces, written in bounded chunks (gzip, when
  the scraper accepts it, compressed the same way), never joined into one big copy.

Headers (HELP, TYPE) always come from prometheus_client's encoder, so both paths write
exactly what it would. The one case taken whole by the library is an escaping scheme
that rewrites legal names (`escaping=dots`), which pre-rendered lines cannot follow.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiohttp.payload import Payload
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import DOTS

SLICE = 0.001  # seconds of rendering at most between two yields to the event loop
BATCH_SAMPLES = 200  # samples of library-rendered families encoded in one call
GZIP_MIN = 4096  # bytes: smaller bodies go out as they are
GZIP_LEVEL = 1  # /metrics text shrinks ~18x at level 1; higher levels cost twice the CPU for ~15 %
GZIP_CHUNK = 256 * 1024  # bytes compressed between two yields (well under a millisecond)
WRITE_CHUNK = 512 * 1024  # bytes handed to the transport between two yields
_EOF = b"# EOF\n"


class _FamiliesAsRegistry:
    """A registry stand-in that yields the given families, for the library's encoders."""

    __slots__ = ("metrics",)

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def negotiate(accept: str) -> tuple[Callable[[Any], bytes], str, bool]:
    """(encoder, content type, OpenMetrics?) for an Accept header, as prometheus_client chooses."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder, content_type, content_type.startswith("application/openmetrics-text")


def _encode(encoder: Callable[[Any], bytes], metrics: list[Metric], om: bool) -> bytes:
    out = encoder(_FamiliesAsRegistry(metrics))
    return out[: -len(_EOF)] if om and out.endswith(_EOF) else out


_headers: dict[tuple[str, str, str, str, str], bytes] = {}  # memo: HELP and TYPE lines


def _header(encoder: Callable[[Any], bytes], content_type: str, metric: Metric, om: bool) -> bytes:
    key = (content_type, metric.name, metric.type, metric.documentation, metric.unit)
    header = _headers.get(key)
    if header is None:
        if len(_headers) > 4096:
            _headers.clear()
        bare = Metric(metric.name, metric.documentation, metric.type, metric.unit)
        header = _headers[key] = _encode(encoder, [bare], om)
    return header


def _fast_allowed(encoder: Callable[[Any], bytes]) -> bool:
    return getattr(encoder, "keywords", {}).get("escaping") != DOTS


def _pieces(metrics: Iterable[Metric], encoder: Callable[[Any], bytes], content_type: str,
            om: bool) -> Iterator[bytes]:
    """The exposition in pieces; the caller may yield to the loop between two."""
    batch: list[Metric] = []
    batched = 0
    for metric in metrics:
        text = getattr(metric, "exposition_text", None)
        if text is None:
            # Library-rendered families go in batches: one encoder call per batch.
            batch.append(metric)
            batched += len(metric.samples)
            if batched >= BATCH_SAMPLES:
                yield _encode(encoder, batch, om)
                batch, batched = [], 0
            continue
        if batch:
            yield _encode(encoder, batch, om)
            batch, batched = [], 0
        yield _header(encoder, content_type, metric, om)
        pieces = getattr(metric, "exposition_pieces", None)
        if pieces is None:
            yield text().encode("utf-8")
        else:
            yield from pieces()
    if batch:
        yield _encode(encoder, batch, om)
    if om:
        yield _EOF


async def render_pieces(registry: Any, accept: str = "",
                        slice_s: float = SLICE) -> tuple[list[bytes], str]:
    """The registry's exposition for an Accept header → (pieces of the body, content type)."""
    encoder, content_type, om = negotiate(accept)
    if not _fast_allowed(encoder):
        return [encoder(registry)], content_type
    metrics = list(registry.collect())
    owners = {id(o): o for m in metrics if (o := getattr(m, "exposition_owner", None)) is not None}
    for owner in owners.values():
        await owner.refresh(slice_s)
    parts: list[bytes] = []
    began = time.perf_counter()
    for piece in _pieces(metrics, encoder, content_type, om):
        parts.append(piece)
        if time.perf_counter() - began > slice_s:
            await asyncio.sleep(0)
            began = time.perf_counter()
    return parts, content_type


async def render(registry: Any, accept: str = "", slice_s: float = SLICE) -> tuple[bytes, str]:
    """The registry's exposition for an Accept header → (body, content type)."""
    parts, content_type = await render_pieces(registry, accept, slice_s)
    return b"".join(parts), content_type


def render_now(registry: Any, accept: str = "") -> tuple[bytes, str]:
    """The same exposition without yielding (benchmarks, tests, code outside a loop)."""
    encoder, content_type, om = negotiate(accept)
    if not _fast_allowed(encoder):
        return encoder(registry), content_type
    return b"".join(_pieces(registry.collect(), encoder, content_type, om)), content_type


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an Accept-Encoding header allows gzip (a q of 0 refuses it)."""
    for token in accept_encoding.split(","):
        coding, _, params = token.partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        return q > 0
    return False


class SegmentCache:
    """The compressed form of the last scrape's large pieces, by content, for the next.

    A piece of at least CACHE_MIN bytes is compressed on its own, between two full
    flushes (the deflate history reset on both sides), so its compressed bytes can stand
    anywhere in a later stream; an unchanged piece (the same length and SHA-256 digest:
    the numbers in a piece come from probed services, so a checksum that a crafted value
    could match is not enough) is then written as it was, not compressed again. Only the
    pieces of the newest scrape are kept."""

    __slots__ = ("segments", "hits", "misses")

    def __init__(self) -> None:
        self.segments: dict[tuple[int, bytes], bytes] = {}
        self.hits = 0  # pieces written from the cache, since start
        self.misses = 0  # large pieces compressed anew


CACHE_MIN = 16 * 1024  # bytes: pieces at least this large are compressed on their own
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time
_GZIP_TRAILER = struct.Struct("<II")  # CRC-32 and length (mod 2**32) of the whole body


async def gzip_pieces(pieces: list[bytes], chunk: int = GZIP_CHUNK,
                      cache: SegmentCache | None = None) -> list[bytes]:
    """`pieces` as one gzip stream, compressed on the loop a chunk at a time, yielding
    between chunks; with a `cache`, large pieces unchanged since the scrape before are
    written in the compressed form they had then.

    A thread would not help on one core: it takes the same CPU from the loop, in
    scheduler-sized pieces instead of sub-millisecond ones.
    """
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)  # raw deflate: framed here
    out = [_GZIP_HEADER]
    crc = size = 0
    dirty = False  # input given to the compressor since its last full flush
    kept: dict[tuple[int, bytes], bytes] = {}
    began = time.perf_counter()
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
        size += len(piece)
        key = None
        if cache is not None and len(piece) >= CACHE_MIN:
            key = (len(piece), hashlib.sha256(piece).digest())
            if dirty:
                out.append(compressor.flush(zlib.Z_FULL_FLUSH))
                dirty = False
            segment = kept.get(key) or cache.segments.get(key)
            if segment is not None:
                cache.hits += 1
                out.append(segment)
                kept[key] = segment
                if time.perf_counter() - began > SLICE:
                    await asyncio.sleep(0)
                    began = time.perf_counter()
                continue
            cache.misses += 1
        first = len(out)
        view = memoryview(piece)
        for start in range(0, len(piece), chunk):
            out.append(compressor.compress(view[start : start + chunk]))
            dirty = True
            await asyncio.sleep(0)
            began = time.perf_counter()
        if key is not None:
            out.append(compressor.flush(zlib.Z_FULL_FLUSH))
            dirty = False
            kept[key] = b"".join(out[first:])
            del out[first + 1:]
            out[first] = kept[key]
    out.append(compressor.flush())
    out.append(_GZIP_TRAILER.pack(crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    if cache is not None:
        cache.segments = kept
    return [part for part in out if part]


class Pieces(Payload):
    """A response body of several byte strings, written one after the other.

    Joining a 3 MiB exposition into one bytes object costs a copy and its page faults in
    one go, and one write of it another; written in bounded chunks, the loop runs between
    them.
    """

    _autoclose = True

    def __init__(self, pieces: list[bytes], content_type: str) -> None:
        super().__init__(pieces, content_type=content_type)
        self._size = sum(len(piece) for piece in pieces)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The whole body as text."""
        return b"".join(self._value).decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """The whole body."""
        return b"".join(self._value)

    async def write(self, writer: Any) -> None:
        """Write every piece in chunks of WRITE_CHUNK (small pieces gathered into one),
        giving the loop a turn between chunks.

        aiohttp waits for the transport to drain only after a write over 64 KiB: thousands
        of small writes would pile the whole body into the transport's buffer at once."""
        gathered: list[memoryview] = []
        size = 0
        for piece in self._value:
            view = memoryview(piece)
            for start in range(0, len(piece), WRITE_CHUNK):
                part = view[start : start + WRITE_CHUNK]
                gathered.append(part)
                size += len(part)
                if size >= WRITE_CHUNK:
                    await writer.write(gathered[0] if len(gathered) == 1 else b"".join(gathered))
                    await asyncio.sleep(0)
                    gathered, size = [], 0
        if gathered:
            await writer.write(gathered[0] if len(gathered) == 1 else b"".join(gathered))
