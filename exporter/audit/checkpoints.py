"""Signed checkpoints of the chain head, in the database and in a directory outside it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from .chain import canonical, format_time
from .errors import AuditError
from .metrics import AuditState

BODY_FIELDS = ("sequence", "hash", "count", "at", "prev_checkpoint")


def body(cp: dict[str, Any]) -> dict[str, Any]:
    """The signed part of a checkpoint."""
    return {name: cp.get(name) for name in BODY_FIELDS}


def digest(cp: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's canonical body: what the next one links to."""
    return hashlib.sha256(canonical(body(cp))).hexdigest()


def sign(cp: dict[str, Any], key: bytes | None) -> str | None:
    """HMAC-SHA256 (hex) of the canonical body, or None without a key."""
    if not key:
        return None
    return hmac.new(key, canonical(body(cp)), hashlib.sha256).hexdigest()


def signature_ok(cp: dict[str, Any], key: bytes) -> bool:
    """True when the checkpoint carries a valid signature under `key`."""
    sig = cp.get("signature")
    return isinstance(sig, str) and hmac.compare_digest(sig, sign(cp, key) or "")


def make(sequence: int, hash_hex: str, count: int, at: datetime, prev: dict | None,
         key: bytes | None) -> dict[str, Any]:
    """A new checkpoint `{sequence, hash, count, at, prev_checkpoint, signature}`."""
    cp = {"sequence": sequence, "hash": hash_hex, "count": count, "at": format_time(at),
          "prev_checkpoint": digest(prev) if prev else None}
    cp["signature"] = sign(cp, key)
    return cp


def file_name(sequence: int) -> str:
    """checkpoint-<sequence, 20 digits>.json: names sort like sequences."""
    return f"checkpoint-{sequence:020d}.json"


def write_file(directory: str | Path, cp: dict[str, Any]) -> Path:
    """Write a checkpoint atomically and durably (temp file, fsync, rename, fsync dir)."""
    return write_json(directory, file_name(cp["sequence"]), cp)


def write_json(directory: str | Path, name: str, obj: dict[str, Any]) -> Path:
    """Write `obj` as `name` in `directory` atomically and durably."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    tmp = directory / (path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_dir(directory: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Checkpoints found in a directory (oldest first) and the files that could not be read."""
    directory = Path(directory)
    found, errors = [], []
    if not directory.is_dir():
        return found, errors
    for path in sorted(directory.glob("checkpoint-*.json")):
        try:
            cp = json.loads(path.read_text())
            if not isinstance(cp.get("sequence"), int) or not isinstance(cp.get("hash"), str):
                raise ValueError("missing sequence or hash")
            cp["_file"] = path.name
            found.append(cp)
        except (OSError, ValueError) as exc:
            errors.append(f"{path}: {exc}")
    found.sort(key=lambda cp: cp["sequence"])
    return found, errors


class Checkpointer:
    """Writes a checkpoint every `every_events` events or `every_seconds`, whichever first."""

    def __init__(self, store, directory: str | Path, key: bytes | None, every_events: int = 1000,
                 every_seconds: float = 300.0, state: AuditState | None = None) -> None:
        self.store = store
        self.directory = Path(directory)
        self.key = key
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.state = state
        self._last: dict[str, Any] | None = None
        self._last_mono = time.monotonic()
        self._loaded = False

    async def _load(self) -> None:
        if not self._loaded:
            rows = await self.store.checkpoints()
            self._last = rows[-1] if rows else None
            self._loaded = True
            if self._last and self.state:
                self.state.last_checkpoint_ts = datetime.fromisoformat(self._last["at"]).timestamp()
                self.state.last_checkpoint_sequence = self._last["sequence"]

    async def maybe(self, force: bool = False) -> dict[str, Any] | None:
        """Write a checkpoint if one is due (or forced and the head moved); returns it."""
        await self._load()
        sequence, head_hash = await self.store.head()
        if self.state:
            self.state.head_sequence = sequence
        last_seq = self._last["sequence"] if self._last else 0
        if sequence <= last_seq:
            return None
        elapsed = time.monotonic() - self._last_mono
        if not force and sequence - last_seq < self.every_events and elapsed < self.every_seconds:
            return None
        cp = make(sequence, head_hash.hex(), sequence - last_seq, datetime.now(UTC), self._last,
                  self.key)
        if not await self.store.add_checkpoint(cp):
            rows = await self.store.checkpoints()  # another sidecar wrote this sequence first
            cp = next(r for r in rows if r["sequence"] == sequence)
        await asyncio.to_thread(write_file, self.directory, cp)
        self._last, self._last_mono = cp, time.monotonic()
        if self.state:
            self.state.last_checkpoint_ts = time.time()
            self.state.last_checkpoint_sequence = cp["sequence"]
        return cp

    async def run(self, poll: float = 5.0) -> None:
        """Check the cadence every `poll` seconds until cancelled."""
        while True:
            with contextlib.suppress(AuditError):
                await self.maybe()
            await asyncio.sleep(min(poll, self.every_seconds))

    async def final(self) -> None:
        """A last checkpoint at shutdown, when the head moved since the previous one."""
        try:
            await self.maybe(force=True)
        except AuditError as exc:
            logger.warning("no final audit checkpoint: {}", exc)
