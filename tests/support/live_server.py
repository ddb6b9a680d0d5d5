"""The update server under a real uvicorn on a loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from workbench.distribute.server import ServerSettings, make_app, uvicorn_config
from workbench.workspace import Workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``make_app`` under a real uvicorn on a loopback port, in a thread; stoppable and restartable."""

    def __init__(self, workspace: Workspace, *, settings: ServerSettings | None = None,
                 wrap: Callable[[Any], Any] | None = None):
        self.workspace = workspace
        self.settings = settings
        self.wrap = wrap
        self.port = free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.app: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repository_url(self) -> str:
        return f"{self.url}/repository"

    def start(self) -> LiveServer:
        self.app = make_app(self.workspace, self.settings)
        config = uvicorn_config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                wrapped=self.wrap(self.app) if self.wrap else None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.server = self.thread = None
