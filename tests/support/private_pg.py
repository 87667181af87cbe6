"""A private Postgres cluster on a free loopback port, for fault tests (stop, restart, kill).

The machine's shared Postgres is never touched: each PrivatePostgres runs its own initdb'd
cluster as the postgres user (initdb refuses root) in a temporary directory, listening on
127.0.0.1 only, and is removed by `destroy()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .tools import free_port, postgres_bin

PG_BIN = postgres_bin()


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command as the postgres user (or as ourselves when we are not root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


class PrivatePostgres:
    """A throw-away cluster: start(), stop(), restart(), kill(), dsn(db), destroy()."""

    def __init__(self, port: int | None = None) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"initdb not found under {PG_BIN}")
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="usdcop-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o755)
        _as_postgres([
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C",
        ])
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = on\nshared_buffers = 32MB\nmax_connections = 40\n"
            )

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """Connection string for a database of this cluster."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the cluster and wait until it accepts connections."""
        _as_postgres([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", str(int(timeout)), "start",
        ])
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (`fast` aborts sessions; `immediate` is a crash)."""
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self) -> None:
        """Stop then start again on the same port."""
        self.stop()
        self.start()

    def running(self) -> bool:
        """True while the postmaster runs."""
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
             "status"] if os.geteuid() == 0 else
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True, text=True,
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        """Create a database; returns its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def destroy(self) -> None:
        """Stop (immediately) if running and delete the cluster's files."""
        if self.data.exists() and self.running():
            try:
                self.stop("immediate")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()
