"""The generated nginx config serves the repository to a real TUF agent (needs Debian's nginx)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer, free_port
from workbench.distribute.agent import TowerAgent
from workbench.distribute.nginx import nginx_server_block
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def test_block_names_the_repository_and_the_api(tmp_path: Path) -> None:
    block = nginx_server_block(tmp_path / "repo", server_name="updates.t", api_upstream="http://a:1")
    assert f"alias {(tmp_path / 'repo' / 'metadata').resolve()}/;" in block
    assert "proxy_pass http://a:1;" in block and "server_name updates.t;" in block
    assert "proxy_pass" not in nginx_server_block(tmp_path, api_upstream=None)


@pytest.fixture
def nginx(tmp_path: Path, repo: UpdateRepository, live_server: LiveServer) -> Iterator[str]:
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    # as root, workers would drop to "nobody", who cannot read pytest's private tmp folders
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n"
        f" proxy_temp_path {tmp_path}/proxy;\n"
        + nginx_server_block(repo.root, listen=f"127.0.0.1:{port}",
                             api_upstream=live_server.url) + "}\n")
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail((tmp_path / "error.log").read_text())
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_nginx_serves_the_repository_to_an_agent(nginx: str, repo: UpdateRepository,
                                                 bundles: dict, tower_config: TowerConfig) -> None:
    publish_bundle(repo, bundles[1])
    (repo.metadata_dir / ".timestamp.json.1.tmp").write_bytes(b"partial")
    with httpx.Client(base_url=nginx) as http:
        ts = http.get("/repository/metadata/timestamp.json")
        assert ts.status_code == 200 and ts.headers["cache-control"] == "no-cache"
        assert http.get("/repository/metadata/timestamp.json",
                        headers={"if-none-match": ts.headers["etag"]}).status_code == 304
        assert http.get("/repository/metadata/.timestamp.json.1.tmp").status_code == 404
        assert http.get("/repository/settings.json").status_code == 404
        assert "immutable" in http.get("/repository/metadata/2.targets.json").headers["cache-control"]
        next_root = http.get("/repository/metadata/2.root.json")      # probed on every refresh
        assert next_root.status_code == 404 and "cache-control" not in next_root.headers
        assert http.get("/v1/health").json()["newest_serial"] == 1      # proxied to the API
    config = dataclasses.replace(tower_config, repository_url=f"{nginx}/repository",
                                 server_url=nginx)
    agent = TowerAgent(config)
    assert agent.pull().serial == 1
    quiet = agent.pull()
    assert quiet.checked == "not-modified" and quiet.reported        # reports go through the proxy
