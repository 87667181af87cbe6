"""Request body content codings: identity and gzip, decompressed as the body streams in.

aiohttp's own decompression is switched off (`auto_decompress=False` in the handler
arguments) so that one place decides: a body without `Content-Encoding` (or `identity`)
is taken as it is; `gzip` (or `x-gzip`) is inflated chunk by chunk, never past the
route's body limit, so a small bomb costs at most that limit in memory; anything else is
415 before the body is read. A corrupt or truncated gzip body is 400.
"""

from __future__ import annotations

import zlib

from .errors import ApiError, bad_request

GZIP = ("gzip", "x-gzip")
IDENTITY = ("", "identity")


def too_large(limit: int, what: str = "request body") -> ApiError:
    """413 for a body over `limit` bytes."""
    return ApiError(413, "payload_too_large", f"{what} over {limit} bytes")


def decoder_for(content_encoding: str | None, limit: int) -> GzipDecoder | None:
    """None for identity, a GzipDecoder for gzip; 415 naming the header for anything else."""
    coding = (content_encoding or "").strip().lower()
    if coding in IDENTITY:
        return None
    if coding in GZIP:
        return GzipDecoder(limit)
    shown = (content_encoding or "")[:40].encode("ascii", "backslashreplace").decode("ascii")
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Encoding {shown!r} is not supported; send identity or gzip",
                   "Content-Encoding")


class GzipDecoder:
    """Inflate a gzip body (one or more members) fed in chunks, at most `limit` bytes out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._fed = False

    def feed(self, chunk: bytes) -> bytes:
        """The inflated bytes of `chunk`; 413 past the limit, 400 when not gzip."""
        out = bytearray()
        data = bytes(chunk)
        while data:
            self._fed = True
            if self._inflater.eof:  # a new member follows the last one
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            room = self.limit - self.produced - len(out)
            try:
                piece = self._inflater.decompress(data, room + 1)
            except zlib.error:
                raise bad_request("request body is not valid gzip", "Content-Encoding") from None
            out += piece
            if self.produced + len(out) > self.limit:
                raise too_large(self.limit, "request body after gzip decompression")
            data = self._inflater.unconsumed_tail or self._inflater.unused_data
        self.produced += len(out)
        return bytes(out)

    def finish(self) -> None:
        """400 when the body ended inside a gzip member."""
        if self._fed and not self._inflater.eof:
            raise bad_request("request body is truncated gzip", "Content-Encoding")
