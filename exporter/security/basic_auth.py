"""HTTP basic auth against bcrypt hashes, as the exporter-toolkit's basic_auth_users.

bcrypt is slow on purpose (tens of ms at cost 10), so it runs in worker threads, at most
`workers` at a time, never on the event loop. Successful checks are remembered in a
bounded cache keyed by a keyed hash of (user, password, stored hash), so a scrape every
15 s pays bcrypt once; failures are never cached. An unknown user is checked against a
dummy hash of the same cost, so answering does not tell which users exist.

The queue in front of bcrypt is bounded: at most `queue` checks wait for or run bcrypt,
and at most `per_client` of them come from one client address. A check beyond either
bound raises AuthBusy before any bcrypt work (the API answers 429), so a flood of wrong
passwords from one address cannot make a valid client wait behind it: that client's
first check waits for at most `queue` bcrypt runs, shared by `workers` threads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

MAX_PASSWORD = 72  # bytes bcrypt looks at; longer ones are refused, not truncated
CACHE_SIZE = 1024
WORKERS = 2
QUEUE = 32  # checks waiting for or running bcrypt at once
PER_CLIENT = 4  # of which one client address may have


class AuthBusy(Exception):
    """Too many password checks are queued (overall or from this address); none was run."""


def _cost(hashed: bytes) -> int:
    return int(hashed[4:6])


class BasicAuth:
    """Checks `Authorization: Basic ...` headers against `users` (name -> bcrypt hash)."""

    def __init__(self, users: Mapping[str, bytes], *, cache_size: int = CACHE_SIZE,
                 workers: int = WORKERS, queue: int = QUEUE, per_client: int = PER_CLIENT) -> None:
        self._users = dict(users)
        cost = max((_cost(h) for h in self._users.values()), default=10)
        # A hash nobody can match, of the highest configured cost: an unknown user costs
        # what a known one does.
        self._dummy = bcrypt.hashpw(os.urandom(32).hex().encode(), bcrypt.gensalt(cost))
        self._key = os.urandom(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._workers = workers
        self._slots: asyncio.Semaphore | None = None
        self._queue = queue
        self._per_client = per_client
        self.queued = 0  # checks waiting for or running bcrypt
        self._queued_by: dict[str, int] = {}  # the same, by client address
        self.bcrypt_runs = 0  # how many checks reached bcrypt (tests and benchmarks read it)
        self.shed = 0  # how many checks were refused with AuthBusy

    @property
    def active(self) -> bool:
        """True when at least one user is configured."""
        return bool(self._users)

    def users(self) -> list[str]:
        """The configured user names."""
        return list(self._users)

    @staticmethod
    def parse(header: str | None) -> tuple[str, bytes] | None:
        """(user, password) from an Authorization header, or None when it is not Basic."""
        if not header:
            return None
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            return None
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None

    async def check(self, authorization_header: str | None, client: str = "") -> bool:
        """True when the header carries a configured user and that user's password.

        `client` is the caller's address as counted for the queue bound (see client_key);
        AuthBusy when the check would have to queue beyond a bound.
        """
        parsed = self.parse(authorization_header)
        if parsed is None:
            return False
        user, password = parsed
        if len(password) > MAX_PASSWORD:
            return False
        stored = self._users.get(user)
        hashed = stored if stored is not None else self._dummy
        key = hmac.new(self._key, b"\0".join((user.encode(), password, hashed)), hashlib.sha256).digest()
        if stored is not None and key in self._cache:
            self._cache.move_to_end(key)
            return True
        ok = await self._bcrypt(password, hashed, client)
        if ok and stored is not None:
            self._cache[key] = None
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ok and stored is not None

    async def _bcrypt(self, password: bytes, hashed: bytes, client: str) -> bool:
        held = self._queued_by.get(client, 0)
        if self.queued >= self._queue or held >= self._per_client:
            self.shed += 1
            raise AuthBusy("too many password checks in progress; retry shortly")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._workers)
        self.queued += 1
        self._queued_by[client] = held + 1
        try:
            async with self._slots:
                self.bcrypt_runs += 1
                try:
                    return await asyncio.to_thread(bcrypt.checkpw, password, hashed)
                except ValueError:  # a hash bcrypt cannot read; refused, never a 500
                    return False
        finally:
            self.queued -= 1
            left = self._queued_by.pop(client) - 1
            if left:
                self._queued_by[client] = left
