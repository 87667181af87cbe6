"""The outage spool: append-only segment files of length + CRC framed records, fsynced.

Record: magic (2 bytes) | payload length (u32, big-endian) | CRC-32 of length and payload |
payload (one spooled event as JSON). On open, a torn tail of the newest segment (a crash
mid-write: nothing after it was ever acknowledged) is truncated; damage anywhere else marks
the segment corrupt: its readable records are still drained (resynchronising on the magic),
and the file is then moved to `quarantine/` instead of being deleted. Methods are blocking;
the writer runs them on a thread, one at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loguru import logger

MAGIC = b"\xa5\x1d"
HEADER = struct.Struct(">2sII")
MAX_RECORD = 1024 * 1024  # an event is at most ~70 KiB (64 KiB of data)
SEGMENT_BYTES = 16 * 1024 * 1024
READ_CHUNK = MAX_RECORD + HEADER.size  # any whole record fits in one read


class SpoolFull(Exception):
    """Appending would exceed the spool's bound, or the disk is full."""


class SpoolLocked(OSError):
    """Another process holds the spool directory (an OSError: the sidecar cannot start)."""


def frame(payload: bytes) -> bytes:
    """One framed record."""
    length = struct.pack(">I", len(payload))
    return MAGIC + length + struct.pack(">I", zlib.crc32(length + payload)) + payload


def _valid_at(buf: bytes | memoryview, pos: int) -> int | None:
    """Length of a valid record at `pos`, or None (0 is never a valid length)."""
    if len(buf) - pos < HEADER.size:
        return None
    magic, length, crc = HEADER.unpack_from(buf, pos)
    if magic != MAGIC or length == 0 or length > MAX_RECORD:
        return None
    end = pos + HEADER.size + length
    if end > len(buf):
        return None
    if zlib.crc32(bytes(buf[pos + 2:pos + 6]) + bytes(buf[pos + HEADER.size:end])) != crc:
        return None
    return length


def scan(buf: bytes, final: bool = True, limit: int | None = None
         ) -> tuple[list[tuple[int, bytes]], int, list[tuple[int, int]]]:
    """Records in `buf` as (offset, payload), the offset scanning stopped at, and bad ranges.

    With final=False a record running past the end of `buf` ends the scan there (more bytes
    may follow); with final=True it is damage. `limit` stops after that many records.
    """
    records: list[tuple[int, bytes]] = []
    bad: list[tuple[int, int]] = []
    pos = 0
    view = memoryview(buf)
    while pos < len(buf) and (limit is None or len(records) < limit):
        length = _valid_at(view, pos)
        if length is not None:
            records.append((pos, bytes(view[pos + HEADER.size:pos + HEADER.size + length])))
            pos += HEADER.size + length
            continue
        if not final and len(buf) - pos >= HEADER.size:
            magic, length, _ = HEADER.unpack_from(view, pos)
            if magic == MAGIC and 0 < length <= MAX_RECORD and pos + HEADER.size + length > len(buf):
                break  # a whole record may follow beyond this chunk
        if not final and len(buf) - pos < HEADER.size:
            break
        start = pos
        pos = buf.find(MAGIC, pos + 1)
        while pos != -1 and _valid_at(view, pos) is None:
            pos = buf.find(MAGIC, pos + 1)
        if pos == -1:
            bad.append((start, len(buf)))
            pos = len(buf)
            break
        bad.append((start, pos))
    return records, pos, bad


@dataclass
class Segment:
    """One segment file and what is known about it."""

    number: int
    path: Path
    size: int
    corrupt: bool = False


class Spool:
    """A bounded, durable FIFO of spooled events with a drain position."""

    def __init__(self, directory: str | Path, max_bytes: int = 256 * 1024 * 1024,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.pending = 0  # records not yet drained
        self.oldest_accepted: float | None = None  # unix time of the oldest pending record
        self.quarantined_new = 0  # corrupt segments found since the metrics last looked
        self._pos: tuple[int, int] = (0, 0)  # (segment number, offset) of the next record
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the active (newest) segment, open for append

    # -- opening and recovery -----------------------------------------------------------

    def open(self) -> dict:
        """Lock the directory, recover the segments; returns what recovery did."""
        (self.dir / "segments").mkdir(parents=True, exist_ok=True)
        (self.dir / "quarantine").mkdir(exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLocked(f"audit spool {self.dir} is in use by another process") from None
        self._lock_fd = fd
        report = {"truncated_bytes": 0, "corrupt_segments": [], "pending": 0}
        paths = sorted((self.dir / "segments").glob("*.seg"))
        cursor = self._read_cursor()
        for index, path in enumerate(paths):
            number = int(path.stem)
            data = path.read_bytes()
            records, _, bad = scan(data)
            newest = index == len(paths) - 1
            if bad and newest and bad[-1][1] == len(data) and not any(
                    off > bad[-1][0] for off, _ in records):
                # Torn tail: written but never acknowledged (the fsync did not return).
                os.truncate(path, bad[-1][0])
                report["truncated_bytes"] = len(data) - bad[-1][0]
                logger.warning("audit spool {}: truncated a torn tail of {} bytes", path,
                               len(data) - bad[-1][0])
                data = data[:bad[-1][0]]
                bad = bad[:-1]
            seg = Segment(number, path, len(data), corrupt=bool(bad))
            if bad:
                report["corrupt_segments"].append(path.name)
                self.quarantined_new += 1
                logger.error("audit spool {}: damaged at byte ranges {}; its readable records"
                             " will be drained and the file quarantined", path, bad[:5])
            start = cursor[1] if cursor and cursor[0] == number else 0
            if cursor and number < cursor[0]:
                start = len(data)  # drained before the crash; deleted below
            self.pending += sum(1 for off, _ in records if off >= start)
            self.segments.append(seg)
        self._pos = (self.segments[0].number, 0) if self.segments else (0, 0)
        if cursor and any(s.number == cursor[0] for s in self.segments):
            self._pos = cursor
        self._drop_drained()
        self._refresh_oldest()
        report["pending"] = self.pending
        return report

    def _read_cursor(self) -> tuple[int, int] | None:
        try:
            obj = json.loads((self.dir / "cursor.json").read_text())
            return int(obj["segment"]), int(obj["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_cursor(self) -> None:
        # Not fsynced: an older cursor after a crash only replays events that the store
        # recognises by event_id.
        tmp = self.dir / "cursor.json.tmp"
        tmp.write_text(json.dumps({"segment": self._pos[0], "offset": self._pos[1]}))
        os.replace(tmp, self.dir / "cursor.json")

    def close(self) -> None:
        """Close files and release the directory lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- state --------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """Bytes on disk in segments."""
        return sum(s.size for s in self.segments)

    @property
    def empty(self) -> bool:
        """True when nothing waits to be drained."""
        return self.pending == 0

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest pending record was accepted (0 when empty)."""
        if self.oldest_accepted is None:
            return 0.0
        return max(0.0, (now or time.time()) - self.oldest_accepted)

    # -- appending ----------------------------------------------------------------------

    def append(self, payloads: list[bytes]) -> None:
        """Write records and fsync once (group commit); SpoolFull beyond the bound."""
        blob = b"".join(frame(p) for p in payloads)
        if self.bytes + len(blob) > self.max_bytes:
            raise SpoolFull(f"audit spool {self.dir} is full ({self.bytes} of {self.max_bytes}"
                            " bytes)")
        was_empty = self.pending == 0
        seg = self._active()
        try:
            written = 0
            while written < len(blob):
                written += os.write(self._fd, blob[written:])
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, seg.size)
            raise SpoolFull(f"audit spool {self.dir}: cannot write ({exc.strerror})") from exc
        seg.size += len(blob)
        self.pending += len(payloads)
        if was_empty:
            self._refresh_oldest()

    def _active(self) -> Segment:
        seg = self.segments[-1] if self.segments else None
        if seg is None or seg.size >= self.segment_bytes or seg.corrupt:
            number = seg.number + 1 if seg else 1
            path = self.dir / "segments" / f"{number:016d}.seg"
            if self._fd is not None:
                os.close(self._fd)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _fsync_dir(path.parent)
            seg = Segment(number, path, 0)
            self.segments.append(seg)
            if len(self.segments) == 1:
                self._pos = (number, 0)
        elif self._fd is None:
            self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        return seg

    # -- draining -----------------------------------------------------------------------

    def read(self, max_records: int) -> tuple[list[bytes], tuple[int, int]]:
        """Up to max_records pending payloads in order, and the position after them."""
        out: list[bytes] = []
        number, offset = self._pos
        for seg in self.segments:
            if seg.number < number:
                continue
            if seg.number > number:
                number, offset = seg.number, 0
            with open(seg.path, "rb") as f:
                while offset < seg.size and len(out) < max_records:
                    f.seek(offset)
                    buf = f.read(min(READ_CHUNK, seg.size - offset))
                    records, stop, bad = scan(buf, final=offset + len(buf) >= seg.size,
                                              limit=max_records - len(out))
                    if bad and not seg.corrupt:
                        seg.corrupt = True
                        self.quarantined_new += 1
                        logger.error("audit spool {}: damaged at offset {}", seg.path,
                                     offset + bad[0][0])
                    out.extend(payload for _, payload in records)
                    if stop == 0:
                        break
                    offset += stop
            if len(out) >= max_records:
                break
        return out, (number, offset)

    def _at_end(self, position: tuple[int, int]) -> bool:
        last = self.segments[-1] if self.segments else None
        return last is None or (position[0] == last.number and position[1] >= last.size)

    def commit(self, position: tuple[int, int], count: int) -> None:
        """Mark records up to `position` as stored; delete (or quarantine) drained segments."""
        self._pos = position
        self.pending = 0 if self._at_end(position) else max(0, self.pending - count)
        self._drop_drained()
        self._write_cursor()
        self._refresh_oldest()

    def _drop_drained(self) -> None:
        number, offset = self._pos
        keep = []
        for seg in self.segments:
            drained = seg.number < number or (seg.number == number and offset >= seg.size)
            last = seg is self.segments[-1]
            if drained and (not last or self.pending == 0):
                if last and self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                if seg.corrupt:
                    os.replace(seg.path, self.dir / "quarantine" / seg.path.name)
                else:
                    seg.path.unlink(missing_ok=True)
                continue
            keep.append(seg)
        self.segments = keep
        if not keep:
            self._pos = (number, 0)
        elif self._pos[0] < keep[0].number:
            self._pos = (keep[0].number, 0)

    def _refresh_oldest(self) -> None:
        if self.pending == 0:
            self.oldest_accepted = None
            return
        payloads, _ = self.read(1)
        try:
            accepted = json.loads(payloads[0])["accepted_at"]
            self.oldest_accepted = datetime.fromisoformat(accepted).timestamp()
        except (IndexError, ValueError, KeyError, TypeError):
            self.oldest_accepted = time.time()

    def dead_letter(self, payload: bytes, reason: str) -> None:
        """Keep a record the database refused for good, with the reason, fsynced."""
        try:
            event = json.loads(payload)
        except ValueError:
            event = payload.decode("utf-8", "replace")
        line = json.dumps({"reason": reason, "dead_at": time.time(), "event": event},
                          ensure_ascii=False) + "\n"
        fd = os.open(self.dir / "dead-letter.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
