"""The monitoring stack of the end-to-end test: real processes on loopback and their configs."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.ops import artefacts as a
from tests.support.tools import free_port

# The shipped Alertmanager config sends every receiver to this placeholder.
PLACEHOLDER_WEBHOOK = "http://127.0.0.1:5001/"
# Settings of the machine that must not leak into a sidecar the test starts.
_PREFIXES = ("EXPORTER_", "REDIS_", "POSTGRES_", "AUDIT_", "MIRROR_", "LATENCY_", "LOG_")


@dataclass
class Process:
    """A server process the test started, with its log file."""

    name: str
    popen: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        """The log so far (for failure messages)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_alive(self) -> None:
        """Fail with the log when the process has exited."""
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n"
                               f"{self.log_text()[-4000:]}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start(name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    """Start a server with stdout and stderr into `workdir/<name>.log`."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 cwd=workdir, start_new_session=True)
    return Process(name, popen, log)


async def until(predicate: Callable[[], Any], what: str, timeout: float,
                processes: tuple[Process, ...] = (), interval: float = 0.2,
                describe: Callable[[], str] | None = None) -> Any:
    """Poll an (async or plain) predicate until it returns something truthy; fail naming
    `what` (and `describe()`, the state seen) after `timeout` seconds, or at once when one
    of `processes` has died."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in processes:
            proc.check_alive()
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            seen = f"; seen: {describe()}" if describe is not None else ""
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {what}{seen}")
        await asyncio.sleep(interval)


async def http_ok(session: aiohttp.ClientSession, url: str) -> bool:
    """True when `url` answers 200."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


# -- the sidecar ---------------------------------------------------------------------------


def sidecar_command() -> list[str]:
    """`usdcop-exporter` from this interpreter's environment."""
    script = Path(sys.executable).with_name("usdcop-exporter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "exporter.cli"]


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without sidecar settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env.update(settings)
    return env


def listening_port(proc: Process) -> int | None:
    """The port of the sidecar's ready line, once it has logged it."""
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", proc.log_text())
    return int(m.group(1)) if m else None


# -- Prometheus, rules and Alertmanager ------------------------------------------------------


def copy_rules(target: Path, shortened_for: dict[str, str]) -> list[Path]:
    """The shipped rule files, with `for:` shortened for the named alerts and every group's
    own `interval` dropped (so the 5-minute long-window group runs at the test's pace)."""
    target.mkdir()
    out = []
    for path in a.rule_files():
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if rule.get("alert") in shortened_for:
                    rule["for"] = shortened_for[rule["alert"]]
        dest = target / path.name
        dest.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(dest)
    return out


def prometheus_config(sidecars: list[str], rules: list[Path], alertmanager: str) -> dict:
    """The shipped prometheus.yml's sidecar job, pointed at `sidecars`, scraping every second."""
    shipped = yaml.safe_load((a.PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "usdcop-exporter"]
    job = copy.deepcopy(job)
    job["static_configs"] = [{"targets": sidecars}]
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rules],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [job],
    }


def alertmanager_config(webhook_base: str) -> dict:
    """The shipped alertmanager.yml with its webhooks sent to `webhook_base` and every
    group_wait/group_interval shortened to a second."""
    text = (a.PROMETHEUS_DIR / "alertmanager.yml").read_text()
    assert PLACEHOLDER_WEBHOOK in text, "the shipped receivers moved: update this test"
    doc = yaml.safe_load(text.replace(PLACEHOLDER_WEBHOOK, webhook_base.rstrip("/") + "/"))

    def shorten(route: dict) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    doc["route"]["group_wait"] = "1s"
    doc["route"]["group_interval"] = "1s"
    shorten(doc["route"])
    return doc


def start_prometheus(binary: str, workdir: Path, config: dict) -> tuple[Process, str]:
    """A private Prometheus on a free loopback port, re-sending firing alerts every second."""
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    # resend-delay: an alert that fires at the first evaluation, before the notifier has
    # found Alertmanager, is sent again a second later rather than after a minute.
    proc = start("prometheus", [binary, f"--config.file={path}",
                                f"--web.listen-address=127.0.0.1:{port}",
                                "--rules.alert.resend-delay=1s",
                                f"--storage.tsdb.path={workdir / 'prometheus-data'}"], workdir)
    return proc, f"http://127.0.0.1:{port}"


def start_alertmanager(binary: str, workdir: Path, config: dict) -> tuple[Process, str]:
    """A private Alertmanager on a free loopback port, without clustering."""
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    proc = start("alertmanager", [binary, f"--config.file={path}",
                                  f"--web.listen-address=127.0.0.1:{port}",
                                  "--cluster.listen-address=",
                                  f"--storage.path={workdir / 'alertmanager-data'}"], workdir)
    return proc, f"http://127.0.0.1:{port}"


# -- the webhook receiver ------------------------------------------------------------------


@dataclass
class Notification:
    """One alert as a receiver got it."""

    receiver: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass
class WebhookReceiver:
    """Records every alert Alertmanager posts, by the receiver path it was posted to."""

    notifications: list[Notification] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        for alert in body["alerts"]:
            self.notifications.append(Notification(
                request.match_info["receiver"], alert["status"], alert["labels"],
                alert["annotations"]))
        return web.Response(status=200)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/{receiver}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def summary(self) -> str:
        """Who got what so far (for failure messages)."""
        return ", ".join(sorted({f"{n.receiver}:{n.status}:{n.labels.get('alertname')}"
                                 f"/{n.labels.get('service', '-')}" for n in self.notifications}))

    def got(self, alertname: str, **labels: str) -> list[Notification]:
        """Firing notifications of `alertname` whose labels include `labels`."""
        return [n for n in self.notifications
                if n.status == "firing" and n.labels.get("alertname") == alertname
                and all(n.labels.get(k) == v for k, v in labels.items())]


async def stop_all(processes: list[Process]) -> None:
    """Stop every process (in parallel threads); never raises."""
    with contextlib.suppress(Exception):
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
