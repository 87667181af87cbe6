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
  purge_*              an AUDIT_PURGED record that does not account for what it removed
                       (exporter/audit/purges.py lists the reasons)

A full run re-hashes every stored event. An incremental run trusts the events up to the
newest signed checkpoint (after checking that checkpoint's event and the chain's first
link) and re-hashes only those after it; the answer's `mode`, `range` and `trusted` say
which. Without AUDIT_CHECKPOINT_KEY every run is full and `status` is `unauthenticated`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from . import checkpoints as cps
from . import purges
from .chain import GENESIS, event_hash


class _Broken(Exception):
    def __init__(self, sequence: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.link = {"sequence": sequence, "reason": reason, "detail": detail}


# What the API and the command line show of a verification.
VERIFY_KEYS = ("ok", "status", "mode", "checked", "range", "trusted", "head_sequence",
               "first_broken", "checkpoint", "warnings")
PurgeCheck = Callable[[dict[str, Any]], None]


class _Walk:
    """The chain walk's state; `feed` checks a run of consecutive events."""

    def __init__(self, checkpoints: list[dict[str, Any]], purge_check: PurgeCheck) -> None:
        self.checked, self.head, self.prev = 0, 0, GENESIS
        self.expected: int | None = None
        self.first: int | None = None
        self.purge_check = purge_check
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
            if event["event_type"] == "AUDIT_PURGED":
                self.purge_check(event)
            if self.first is None:
                self.first = seq
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


def purge_checker(checkpoints: list[dict[str, Any]], key: bytes | None,
                  retention: float | None, on_disk: dict[int, dict[str, Any]]) -> PurgeCheck:
    """A function raising _Broken when an AUDIT_PURGED record does not account for its range."""
    def check(event: dict[str, Any]) -> None:
        try:
            purges.check(event, checkpoints, key, retention, on_disk)
        except purges.PurgeRefused as exc:
            raise _Broken(event["sequence"], exc.reason, exc.detail) from None
    return check


async def verify_events(
    events: AsyncIterator[dict[str, Any]],
    anchor: Callable[[int], Awaitable[dict[str, Any] | None]],
    checkpoints: list[dict[str, Any]],
    key: bytes | None = None,
    chunk: int = 2000,
    *,
    retention: float | None = None,
    on_disk: dict[int, dict[str, Any]] | None = None,
    start: Callable[[PurgeCheck], Awaitable[tuple[int, bytes, dict[str, Any]] | None]]
    | None = None,
    progress: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Verify events (chain form, ascending) against checkpoints; `anchor(n)` finds the purge of 1..n.

    Without `start`, or when it returns None, the events are the whole stored chain (a
    full run). Otherwise `start` has checked the chain's first event and a signed
    checkpoint's event and returned (sequence, hash, what is trusted) to continue after;
    `events` are then those after that sequence (an incremental run). The
    hashing runs on a worker thread, a chunk at a time, so a long verification inside the
    sidecar leaves its event loop answering. `progress` is called with each chunk once it
    is checked."""
    started = time.time()
    warnings: list[str] = []
    check_purge = purge_checker(checkpoints, key, retention, on_disk or {})
    walk = _Walk(checkpoints, check_purge)
    newest, trusted, mode = None, None, "full"
    try:
        for cp in checkpoints:
            _check_signature(cp, key)
        if checkpoints and not key:
            warnings.append("checkpoints are unsigned or their signatures were not checked"
                            " (no AUDIT_CHECKPOINT_KEY)")
        if start is not None:
            mode = "incremental"
            begin = await start(check_purge)
            if begin is None:
                mode = "full"  # no signed checkpoint to continue from
            else:
                sequence, digest, trusted = begin
                walk.head, walk.prev, walk.expected = sequence, digest, sequence + 1
        async for run in _chunks(events, chunk):
            if walk.expected is None:
                await _link_first(walk, run[0]["sequence"], anchor, check_purge)
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
    if not key:
        warnings.append("no AUDIT_CHECKPOINT_KEY: purges cannot be authenticated, so a prefix"
                        " removed behind a forged AUDIT_PURGED record is caught only by the"
                        " checkpoints it contradicts")
    status = "broken" if broken is not None else "ok" if key else "unauthenticated"
    return {
        "ok": broken is None, "status": status, "mode": mode, "checked": walk.checked,
        "head_sequence": walk.head or None,
        "range": {"from": walk.first, "through": walk.head} if walk.checked else None,
        "trusted": trusted,
        "first_broken": broken,
        "checkpoint": _public(newest, key) if newest else None,
        "warnings": warnings, "started_at": started, "duration_seconds": time.time() - started,
    }


async def _link_first(walk: _Walk, first: int,
                      anchor: Callable[[int], Awaitable[dict[str, Any] | None]],
                      check_purge: PurgeCheck) -> None:
    """Start the walk at the first stored event: genesis, or the purge record of 1..first-1."""
    if first != 1:
        purge = await anchor(first - 1)
        if purge is None:
            raise _Broken(first, "sequence_gap", f"events before {first} are missing and no"
                          " AUDIT_PURGED record covers them")
        if not purge.get("_unverified_anchor"):
            check_purge(purge)
        walk.prev = bytes.fromhex(purge["data"]["through_hash"])
    walk.expected = first


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
                       *, full: bool = True, retention: float | None = None,
                       progress: Callable[[list[dict[str, Any]]], None] | None = None,
                       ) -> dict[str, Any]:
    """Verify a store's chain with its checkpoints and those on disk (read first).

    `full` re-hashes every stored event. Otherwise (incremental) the events up to the newest
    checkpoint whose signature verifies under `key` are trusted, once that checkpoint's
    event still hashes to it and the chain's first event still links to genesis or to its
    purge record; only the events after it are re-hashed. Without a key nothing can be
    trusted and the run is full."""
    disk, errors = cps.read_dir(checkpoint_dir) if checkpoint_dir else ([], [])
    on_disk, purge_errors = purges.read_dir(checkpoint_dir)
    stored = await store.checkpoints()
    checkpoints = disk + stored
    after = {"sequence": 0}

    async def events():
        async for event in store.iter_events(after=after["sequence"]):
            yield event

    async def begin(check_purge: PurgeCheck):
        signed = [cp for cp in checkpoints if cp.get("signature") and cps.signature_ok(cp, key)]
        first = await store.first_sequence()
        usable = [cp for cp in signed if first is not None and cp["sequence"] >= first]
        if not usable:
            return None
        cp = max(usable, key=lambda c: (c["sequence"], bool(c.get("_file"))))
        head = await store.get_event(first)
        link = GENESIS
        if first > 1:
            purge = await store.find_purge(first - 1)
            if purge is None:
                raise _Broken(first, "sequence_gap", f"events before {first} are missing and no"
                              " AUDIT_PURGED record covers them")
            check_purge(purge)
            link = bytes.fromhex(purge["data"]["through_hash"])
        _check_event(head, link)
        event = head if cp["sequence"] == first else await store.get_event(cp["sequence"])
        if event is None:
            return None  # the full walk names what is missing
        _check_event(event, None)
        if event["hash"].hex() != cp["hash"]:
            raise _Broken(event["sequence"], "checkpoint_mismatch", f"checkpoint at"
                          f" {event['sequence']} ({_source(cp)}) records another hash")
        # The trusted range is not re-hashed, but it must be whole: sequences are
        # contiguous, so any deleted event shows as a count short of the range's length.
        stored = await store.count_range(first, cp["sequence"])
        if stored != cp["sequence"] - first + 1:
            raise _Broken(first, "sequence_gap", f"{cp['sequence'] - first + 1 - stored} of the"
                          f" events {first}..{cp['sequence']} are missing; run a full"
                          " verification (?full=true, audit verify --full) to name them")
        after["sequence"] = cp["sequence"]
        return cp["sequence"], event["hash"], {
            "from": first, "through": cp["sequence"],
            "checkpoint": "directory" if cp.get("_file") else "database"}

    result = await verify_events(events(), store.find_purge, checkpoints, key,
                                 retention=retention, on_disk=on_disk,
                                 start=None if full or not key else begin, progress=progress)
    result["warnings"].extend(f"unreadable checkpoint file {e}" for e in errors + purge_errors)
    return result


def _check_event(event: dict[str, Any], prev: bytes | None) -> None:
    """One event's own hash, and its link to `prev` when given."""
    seq = event["sequence"]
    if prev is not None and event["prev_hash"] != prev:
        raise _Broken(seq, "prev_hash_mismatch", f"prev_hash of {seq} is not the hash of"
                      f" {seq - 1}" if seq > 1 else "the first event does not link to genesis"
                      " or to its purge record")
    if event_hash(event["prev_hash"], event) != event["hash"]:
        raise _Broken(seq, "hash_mismatch", f"event {seq} does not match its hash")


def _from_export(obj: dict[str, Any]) -> dict[str, Any]:
    event = dict(obj)
    event["prev_hash"] = bytes.fromhex(obj["prev_hash"])
    event["hash"] = bytes.fromhex(obj["hash"])
    return event


def _purge_records(path: Path) -> dict[int, dict]:
    found: dict[int, dict] = {}
    with open(path) as f:
        for line in f:
            if '"AUDIT_PURGED"' in line:
                obj = json.loads(line)
                if not isinstance(obj, dict) or obj.get("event_type") != "AUDIT_PURGED":
                    continue
                data = obj.get("data")
                through = data.get("through_sequence") if isinstance(data, dict) else None
                if isinstance(through, int):
                    found.setdefault(through, obj)
    return found


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
                      key: bytes | None = None, *, retention: float | None = None,
                      progress: Callable[[list[dict[str, Any]]], None] | None = None,
                      ) -> dict[str, Any]:
    """Verify an `audit export` file (JSON lines) offline, every event (a full run)."""
    path = Path(path)
    records = _purge_records(path)  # first pass: the purge records anchoring a late start
    late: list[str] = []

    async def anchor(through: int):
        if through in records:
            return records[through]
        # An export of a window starts mid-chain: its first link is taken as given.
        first = next(_read_export(path))
        late.append(f"the export starts at sequence {through + 1}: the link to the events"
                    " before it was not checked")
        return {"data": {"through_hash": first["prev_hash"].hex()}, "_unverified_anchor": True}

    async def events():
        for event in _read_export(path):
            yield event

    disk, errors = cps.read_dir(checkpoint_dir) if checkpoint_dir else ([], [])
    on_disk, purge_errors = purges.read_dir(checkpoint_dir)
    result = await verify_events(events(), anchor, disk, key, retention=retention,
                                 on_disk=on_disk, progress=progress)
    result["warnings"].extend(late)
    result["warnings"].extend(f"unreadable checkpoint file {e}" for e in errors + purge_errors)
    return result
