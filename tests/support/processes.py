"""Real ``workbench`` processes for the fault tests: a command that may kill itself at a
named durable step, and ``workbench serve`` on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

WORKBENCH = str(Path(sys.executable).with_name("workbench"))


def workbench(home: Path, *args: str, crash_at: str = "", check: bool = True
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_CRASH_AT": crash_at}
    done = subprocess.run([WORKBENCH, "--home", str(home), *args], env=env, text=True,
                          capture_output=True, timeout=300)
    if check and crash_at:
        assert done.returncode == -signal.SIGKILL, (crash_at, done.returncode, done.stderr)
    elif check:
        assert done.returncode == 0, done.stderr
    return done


class Serve:
    """A real ``workbench serve`` process on a loopback port."""

    def __init__(self, home: Path, *, crash_at: str = "", host_name: str = ""):
        from tests.support.live_server import free_port

        self.home = home
        self.port = free_port()
        env = {**os.environ, "WORKBENCH_CRASH_AT": crash_at, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [WORKBENCH, "--home", str(home), "serve", "--port", str(self.port),
             "--spool-interval", "0", *(["--host-name", host_name] if host_name else [])],
            env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/v1/health", timeout=2)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise AssertionError("workbench serve did not start") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def upload(client: httpx.Client, url: str, token: str, raw: bytes) -> httpx.Response:
    return client.post(f"{url}/v1/quarantine", content=raw, timeout=120,
                       headers={"Authorization": f"Bearer {token}", "X-Workbench-Server": "mx01",
                                "X-Workbench-Reason": "stuck"})


def upload_at_once(urls: list[str], token: str, make: Callable[[int], bytes], *, per_uploader: int,
                   shared: int, uploaders: int = 4) -> tuple[list[Counter[str]], list[str]]:
    """``uploaders`` threads upload ``per_uploader`` messages each, alternating between the
    ``urls`` (hosts behind a load balancer); every other message is one of ``shared`` that
    every uploader sends, so the same message races to several hosts. Returns, per URL,
    the sha256s it acknowledged (how often), and the refusals."""
    acknowledged: list[Counter[str]] = [Counter() for _ in urls]
    failures: list[str] = []
    lock = threading.Lock()

    def uploader(worker: int) -> None:
        with httpx.Client() as client:
            for n in range(per_uploader):
                number = n % shared if n % 2 == 0 else 1000 * (worker + 1) + n
                which = (n + worker) % len(urls)
                response = upload(client, urls[which], token, make(number))
                with lock:
                    if response.status_code in (200, 201):
                        acknowledged[which][response.json()["sha256"]] += 1
                    else:
                        failures.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=uploader, args=(w,)) for w in range(uploaders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return acknowledged, failures
