"""Chain verification: recompute every hash, follow every link, check the checkpoints.

The first broken link is named by sequence and reason:
  hash_mismatch        the event's fields no longer give its hash (changed)
  prev_hash_mismatch   its prev_hash is not the previous event's hash (reordered, inserted)
  sequence_gap         sequences jump (events deleted), or the chain starts late with no
                       AUDIT_PURGED record accounting for the missing prefix
  sequence_order       a sequence repeats or goes back
  checkpoint_mismatch  the event at a checkpoint's sequence has another hash
  checkpoint_signature a checkpoint's HMAC does not verify under AUDIT_CHECKPOINT_KEY
  checkpoint_unsigned  a key is configured but a checkpoint carries no signature
  tail_cut             the head is behind the newest checkpoint (events cut off the end)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from . import checkpoints as cps
from .chain import GENESIS, event_hash


class _Broken(Exception):
    def __init__(self, sequence: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.link = {"sequence": sequence, "reason": reason, "detail": detail}


class _Walk:
    """The chain walk's state; `feed` checks a run of consecutive events."""

    def __init__(self, checkpoints: list[dict[str, Any]]) -> None:
        self.checked, self.head, self.prev = 0, 0, GENESIS
        self.expected: int | None = None
        self.by_seq: dict[int, list[dict]] = {}
        for cp in checkpoints:
            self.by_seq.setdefault(cp["sequence"], []).append(cp)

    def feed(self, events: list[dict[str, Any]]) -> None:
        prev, expected = self.prev, self.expected
        for event in events:
            seq = event["sequence"]
            if seq < expected:
                raise _Broken(seq, "sequence_order", f"sequence {seq} after {expected - 1}")
            if seq > expected:
                raise _Broken(expected, "sequence_gap", f"events {expected}..{seq - 1} are missing")
            if event["prev_hash"] != prev:
                raise _Broken(seq, "prev_hash_mismatch",
                              f"prev_hash of {seq} is not the hash of {seq - 1}")
            if event_hash(prev, event) != event["hash"]:
                raise _Broken(seq, "hash_mismatch", f"event {seq} does not match its hash")
            for cp in self.by_seq.get(seq, ()):
                if cp["hash"] != event["hash"].hex():
                    raise _Broken(seq, "checkpoint_mismatch",
                                  f"checkpoint at {seq} ({_source(cp)}) records another hash")
            prev, self.head, expected = event["hash"], seq, seq + 1
            self.prev, self.expected = prev, expected
            self.checked += 1


async def _chunks(events: AsyncIterator[dict[str, Any]], size: int):
    chunk: list[dict[str, Any]] = []
    async for event in events:
        chunk.append(event)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def verify_events(
    events: AsyncIterator[dict[str, Any]],
    anchor: Callable[[int], Awaitable[dict[str, Any] | None]],
    checkpoints: list[dict[str, Any]],
    key: bytes | None = None,
    chunk: int = 2000,
    progress: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Verify events (chain form, ascending) against checkpoints; `anchor(n)` finds the purge of 1..n.

    The hashing runs on a worker thread, a chunk at a time, so a long verification inside
    the sidecar leaves its event loop answering. `progress` is called with each chunk once
    it is checked."""
    started = time.time()
    warnings: list[str] = []
    walk = _Walk(checkpoints)
    newest = None
    try:
        for cp in checkpoints:
            _check_signature(cp, key)
        if checkpoints and not key:
            warnings.append("checkpoints are unsigned or their signatures were not checked"
                            " (no AUDIT_CHECKPOINT_KEY)")
        async for run in _chunks(events, chunk):
            if walk.expected is None:
                first = run[0]["sequence"]
                if first != 1:
                    purge = await anchor(first - 1)
                    if purge is None:
                        raise _Broken(first, "sequence_gap",
                                      f"events before {first} are missing and no AUDIT_PURGED"
                                      " record covers them")
                    walk.prev = bytes.fromhex(purge["data"]["through_hash"])
                walk.expected = first
            await asyncio.to_thread(walk.feed, run)
            if progress is not None:
                progress(run)
        for cp in checkpoints:
            if cp["sequence"] > walk.head:
                raise _Broken(walk.head + 1, "tail_cut",
                              f"head is {walk.head} but checkpoint {_source(cp)} covers"
                              f" {cp['sequence']}: events were cut off the end")
            if newest is None or cp["sequence"] >= newest["sequence"]:
                newest = cp
        broken = None
    except _Broken as exc:
        broken = exc.link
    if not checkpoints:
        warnings.append("no checkpoints found: the chain alone was checked, a cut-off tail"
                        " cannot be detected")
    return {
        "ok": broken is None, "checked": walk.checked, "head_sequence": walk.head or None,
        "first_broken": broken,
        "checkpoint": _public(newest, key) if newest else None,
        "warnings": warnings, "started_at": started, "duration_seconds": time.time() - started,
    }


def _check_signature(cp: dict[str, Any], key: bytes | None) -> None:
    if not key:
        return
    if not cp.get("signature"):
        raise _Broken(cp["sequence"], "checkpoint_unsigned",
                      f"checkpoint {_source(cp)} is not signed")
    if not cps.signature_ok(cp, key):
        raise _Broken(cp["sequence"], "checkpoint_signature",
                      f"checkpoint {_source(cp)} has an invalid signature")


def _source(cp: dict[str, Any]) -> str:
    return f"{cp['_file']} in the checkpoint directory" if cp.get("_file") else \
        f"#{cp['sequence']} in the database"


def _public(cp: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    out = cps.body(cp)
    out["signed"] = bool(cp.get("signature"))
    out["signature_checked"] = bool(key)
    out["source"] = "directory" if cp.get("_file") else "database"
    return out


async def verify_store(store, checkpoint_dir: str | Path | None, key: bytes | None = None,
                       progress: Callable[[list[dict[str, Any]]], None] | None = None,
                       ) -> dict[str, Any]:
    """Verify a store's chain with its checkpoints and those on disk (read first)."""
    disk, errors = cps.read_dir(checkpoint_dir) if checkpoint_dir else ([], [])
    stored = await store.checkpoints()
    result = await verify_events(store.iter_events(), store.find_purge, disk + stored, key,
                                 progress=progress)
    result["warnings"].extend(f"unreadable checkpoint file {e}" for e in errors)
    return result


def _from_export(obj: dict[str, Any]) -> dict[str, Any]:
    event = dict(obj)
    event["prev_hash"] = bytes.fromhex(obj["prev_hash"])
    event["hash"] = bytes.fromhex(obj["hash"])
    return event


def _purge_records(path: Path) -> dict[int, dict]:
    purges: dict[int, dict] = {}
    with open(path) as f:
        for line in f:
            if '"AUDIT_PURGED"' in line:
                obj = json.loads(line)
                if obj.get("event_type") == "AUDIT_PURGED":
                    purges.setdefault(int(obj["data"]["through_sequence"]), obj)
    return purges


def _read_export(path: Path):
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield _from_export(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not an exported event ({exc})") from None


async def verify_file(path: str | Path, checkpoint_dir: str | Path | None,
                      key: bytes | None = None,
                      progress: Callable[[list[dict[str, Any]]], None] | None = None,
                      ) -> dict[str, Any]:
    """Verify an `audit export` file (JSON lines) offline."""
    path = Path(path)
    purges = _purge_records(path)  # first pass: the purge records anchoring a late start
    late: list[str] = []

    async def anchor(through: int):
        if through in purges:
            return purges[through]
        # An export of a window starts mid-chain: its first link is taken as given.
        first = next(_read_export(path))
        late.append(f"the export starts at sequence {through + 1}: the link to the events"
                    " before it was not checked")
        return {"data": {"through_hash": first["prev_hash"].hex()}}

    async def events():
        for event in _read_export(path):
            yield event

    disk, errors = cps.read_dir(checkpoint_dir) if checkpoint_dir else ([], [])
    result = await verify_events(events(), anchor, disk, key, progress=progress)
    result["warnings"].extend(late)
    result["warnings"].extend(f"unreadable checkpoint file {e}" for e in errors)
    return result
