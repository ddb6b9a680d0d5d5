"""Fleet benchmark: thousands of simulated tower agents polling `workbench serve` on loopback.

What it measures (one run, one machine):

1. steady state: every agent polls (conditional GET of timestamp.json, then its report)
   every --poll seconds with +-10 % jitter; the server's requests/s and its CPU time per
   no-change poll (read from /proc for the server process);
2. rollout: a new release is published; the time until every agent has downloaded,
   checked (length + sha256 against the signed targets metadata) and reported it, in
   poll intervals, and the bytes each agent moved for the update; GET /v1/fleet must then
   show every server on the new serial;
3. one real TowerAgent (TUF client, self-tests) pulls the same update, to check that the
   simulated agents fetch what a real one does;
4. the peer: the same repository served by nginx (Debian nginx-light, one worker, the
   config from `workbench serve --nginx-config`) against `workbench serve`, both hammered
   with conditional GETs of timestamp.json: requests/s and server CPU per request.

The simulated agents speak HTTP/1.1 over raw asyncio streams (one new connection per
poll, as a real agent opens one per attempt) so the load generator is cheap enough to
share two cores with the server. They do not verify signatures: that costs the towers,
not the server. Usage:

    python bench/fleet.py                       # 100 towers x 36 servers, 10 s polls
    python bench/fleet.py --poll 60 --json bench/out/fleet.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from procstat import tree_cpu_seconds

from workbench.distribute.agent import TowerAgent
from workbench.distribute.fleet import summarize
from workbench.distribute.nginx import nginx_server_block
from workbench.distribute.settings import RepositorySettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.tower_config import TowerConfig
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.release.bundle import ManifestRule, SourceEntry, bundle_name, prepare_bundle
from workbench.samples.mail import EICAR
from workbench.workspace import Workspace

# --- measuring processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


# --- a minimal HTTP/1.1 client -------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    wire_in: int
    wire_out: int


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> Reply:
        assert self.reader is not None and self.writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.writer.write(raw)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        reply_headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                reply_headers[k.strip().lower()] = v.strip()
        data = b""
        if method != "HEAD" and status not in (204, 304):
            if reply_headers.get("transfer-encoding") == "chunked":
                chunks = []
                while True:
                    size = int((await self.reader.readline()).strip(), 16)
                    chunk = await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
                    chunks.append(chunk[:-2])
                data = b"".join(chunks)
            else:
                data = await self.reader.readexactly(int(reply_headers.get("content-length", "0")))
        return Reply(status, reply_headers, data, len(status_and_headers) + len(data), len(raw))


# --- the simulated fleet ---------------------------------------------------------------------------


@dataclasses.dataclass
class SimAgent:
    tower: str
    server: str
    token: str
    serial: int
    etag: str
    root_version: int
    update_wire: int = 0           # bytes both ways for the last update (requests + replies)
    update_bodies: int = 0         # reply bodies only (what a TUF client counts)
    updated_at: float = 0.0


@dataclasses.dataclass
class Stats:
    no_change_polls: int = 0
    no_change_wire: int = 0        # bytes both ways, GET 304 + report
    updates: int = 0
    requests: int = 0
    errors: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)


class Fleet:
    def __init__(self, host: str, port: int, agents: list[SimAgent], poll: float, seed: int = 1,
                 long_poll: bool = False):
        self.host, self.port = host, port
        self.agents = agents
        self.poll = poll
        self.long_poll = long_poll
        self._late: list[asyncio.Task[None]] = []
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.stopping = False

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(a) for a in self.agents))

    async def _loop(self, agent: SimAgent) -> None:
        await asyncio.sleep(self.rng.uniform(0, self.poll))
        while not self.stopping:
            held = False
            try:
                held = await self._poll(agent)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.stats.errors += 1
            if held:        # the server held the poll for the interval: ask again at once
                await asyncio.sleep(self.rng.uniform(0, min(1.0, self.poll * 0.1)))
            else:
                await asyncio.sleep(self.poll * self.rng.uniform(0.9, 1.1))

    async def _late_report(self, agent: SimAgent) -> None:
        await asyncio.sleep(self.rng.uniform(0, 30.0))
        try:
            async with Connection(self.host, self.port) as conn:
                await self._report(conn, agent, "ok")
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.stats.errors += 1

    async def _report(self, conn: Connection, agent: SimAgent, state: str,
                      target: int | None = None) -> Reply:
        body = json.dumps({"server": agent.server, "state": state, "serial": agent.serial,
                           "target_serial": target, "agent_version": "bench"}).encode()
        reply = await conn.request("POST", "/v1/fleet/report", {
            "Authorization": f"Bearer {agent.token}", "Content-Type": "application/json"}, body)
        self.stats.requests += 1
        if reply.status != 204:
            raise ValueError(f"report: HTTP {reply.status}")
        return reply

    async def _poll(self, agent: SimAgent) -> bool:
        """One attempt; True if the server held it (long-poll)."""
        async with Connection(self.host, self.port) as conn:
            started = time.perf_counter()
            headers = {"If-None-Match": agent.etag}
            if self.long_poll:
                headers["Prefer"] = f"wait={max(1, int(self.poll))}"
            ts = await conn.request("GET", "/repository/metadata/timestamp.json", headers)
            held = "preference-applied" in ts.headers
            if not held:
                self.stats.latencies.append(time.perf_counter() - started)
            self.stats.requests += 1
            if ts.status == 304:
                report = await self._report(conn, agent, "ok")
                self.stats.no_change_polls += 1
                self.stats.no_change_wire += (ts.wire_in + ts.wire_out + report.wire_in
                                              + report.wire_out)
                return held
            if ts.status != 200:
                raise ValueError(f"timestamp: HTTP {ts.status}")
            wire, bodies = ts.wire_in + ts.wire_out, len(ts.body)
            replies = [await conn.request(
                "GET", f"/repository/metadata/{agent.root_version + 1}.root.json")]
            snapshot_version = json.loads(ts.body)["signed"]["meta"]["snapshot.json"]["version"]
            snapshot = await conn.request("GET", f"/repository/metadata/{snapshot_version}.snapshot.json")
            targets_version = json.loads(snapshot.body)["signed"]["meta"]["targets.json"]["version"]
            targets = await conn.request("GET", f"/repository/metadata/{targets_version}.targets.json")
            replies += [snapshot, targets]
            listed = json.loads(targets.body)["signed"]["targets"]
            path, info = max(listed.items(), key=lambda kv: kv[1]["custom"]["serial"])
            serial = info["custom"]["serial"]
            if serial > agent.serial:
                if not held:            # as TowerAgent: no "updating" after a notification
                    replies.append(await self._report(conn, agent, "updating", serial))
                sha = info["hashes"]["sha256"]
                bundle = await conn.request("GET", f"/repository/targets/{sha}.{path}")
                if len(bundle.body) != info["length"] or hashlib.sha256(bundle.body).hexdigest() != sha:
                    raise ValueError("bundle does not match the signed length and hash")
                replies.append(bundle)
                agent.updated_at = time.monotonic()      # verified: what a real agent switches to
                agent.serial = serial
                if held:                # as TowerAgent: the report is spread (report_spread_seconds),
                    self._late.append(asyncio.create_task(self._late_report(agent)))   # new connection
                else:
                    replies.append(await self._report(conn, agent, "ok"))
                self.stats.updates += 1
            self.stats.requests += len(replies)
            agent.update_wire = wire + sum(r.wire_in + r.wire_out for r in replies)
            agent.update_bodies = bodies + sum(len(r.body) for r in replies)
            agent.etag = ts.headers.get("etag", "")
            return held


async def hammer(host: str, port: int, path: str, etag: str, *, connections: int,
                 seconds: float) -> tuple[int, int]:
    """Keep-alive conditional GETs from ``connections`` clients: (requests, non-304 replies)."""
    done = other = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, other
        while time.monotonic() < deadline:
            async with Connection(host, port) as conn:     # again if the server closes it
                try:
                    while time.monotonic() < deadline:
                        reply = await conn.request("GET", path, {"If-None-Match": etag})
                        done += 1
                        other += reply.status != 304
                except (asyncio.IncompleteReadError, ConnectionError):
                    continue

    await asyncio.gather(*(client() for _ in range(connections)))
    return done, other


def saturate(name: str, pid: int, port: int, prefix: str, *, connections: int,
             seconds: float) -> dict[str, Any]:
    etag = httpx.get(f"http://127.0.0.1:{port}{prefix}/metadata/timestamp.json").headers["etag"]
    path = f"{prefix}/metadata/timestamp.json"
    asyncio.run(hammer("127.0.0.1", port, path, etag, connections=connections, seconds=1.0))
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    done, other = asyncio.run(hammer("127.0.0.1", port, path, etag, connections=connections,
                                     seconds=seconds))
    cpu, elapsed = tree_cpu_seconds(pid) - cpu0, time.monotonic() - t0
    return {"server": name, "requests": done, "not_304": other, "seconds": round(elapsed, 2),
            "requests_per_second": round(done / elapsed), "server_cpu_seconds": round(cpu, 2),
            "server_cpu_us_per_request": round(cpu / done * 1e6, 1) if done else None}


# --- setup ---------------------------------------------------------------------------------------


def build_bundle(folder: Path, serial: int, rules: int) -> Path:
    """``rules`` generated rules (distinct per serial), one EICAR self-test."""
    sources, manifest_rules = {}, []
    for i in range(rules):
        name = f"bench_rule_{i:05d}"
        fingerprint = hashlib.sha256(f"{name}:{serial}".encode()).hexdigest()[:32]
        marker = hashlib.sha256(f"{i}:{serial}".encode()).hexdigest()[:24]
        pattern = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" if i == 0 else f"bench-{marker}"
        member = f"rules/bench/{name}.yar"
        sources[member] = (f'rule {name}\n{{\n    meta:\n        fingerprint = "{fingerprint}"\n'
                           f'    strings:\n        $a = "{pattern}"\n        $b = {{ {marker[:16]} }}\n'
                           f"    condition:\n        $a or $b\n}}\n").encode()
        manifest_rules.append(ManifestRule(name=name, namespace="bench", fingerprint=fingerprint,
                                           status="RELEASED", file=member))
    prepared = prepare_bundle(sources=sources,
                              entrypoints=[SourceEntry(path=m, namespace="bench") for m in sources],
                              rules=manifest_rules, externals={}, samples={"eicar": EICAR},
                              expected={"eicar": ["bench_rule_00000"]})
    out = folder / str(serial) / bundle_name(serial)
    prepared.write(out, serial=serial, created=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
                   commit=f"{serial:040x}")
    return out


def start_nginx(repo_root: Path, work: Path) -> tuple[subprocess.Popen[bytes] | None, int, str]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    port = free_port()
    if nginx is None:
        print("nginx not found: the peer is python -m http.server (no ETag: 200 every time)")
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                 "127.0.0.1", "--directory", str(repo_root)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(f"http://127.0.0.1:{port}/", proc)
        return proc, port, ""
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/nginx.err;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n access_log off;\n keepalive_requests 1000000;\n client_body_temp_path {work}/body;\n proxy_temp_path {work}/proxy;\n"
        + nginx_server_block(repo_root, listen=f"127.0.0.1:{port}", api_upstream=None) + "}\n")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)])
    wait_for(f"http://127.0.0.1:{port}/", proc)
    return proc, port, "/repository"


class _SkipPeer(Exception):
    """--skip-peer: stop after the fleet part."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towers", type=int, default=100)
    parser.add_argument("--servers", type=int, default=36, help="per tower")
    parser.add_argument("--poll", type=float, default=10.0, help="poll interval, seconds")
    parser.add_argument("--rules", type=int, default=300, help="rules in each bundle")
    parser.add_argument("--window", type=float, default=2.0, help="steady-state window, in polls")
    parser.add_argument("--connections", type=int, default=32, help="clients in the peer test")
    parser.add_argument("--saturate-seconds", type=float, default=5.0)
    parser.add_argument("--long-poll", action="store_true",
                        help="agents hold each poll at the server (Prefer: wait=POLL)")
    parser.add_argument("--skip-peer", action="store_true", help="skip the real agent and nginx parts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--nice-agents", type=int, default=0, metavar="N",
                        help="lower the simulated agents' priority by N once the server runs "
                             "(on a real fleet they are 3,600 other machines; here they share "
                             "the server's cores)")
    parser.add_argument("--profile-server", type=Path, metavar="FILE",
                        help="run the server under cProfile, stats to FILE (slows it down: "
                             "for finding where its time goes, not for the figures)")
    args = parser.parse_args()
    count = args.towers * args.servers
    work = Path(tempfile.mkdtemp(prefix="wb-fleet-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(), "agents": count, "towers": args.towers,
        "poll_seconds": args.poll, "rules_per_bundle": args.rules, "long_poll": args.long_poll,
        "agents_niceness": args.nice_agents,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        workspace = Workspace(work / "home").ensure()
        repo = UpdateRepository.for_workspace(workspace)
        repo.init(RepositorySettings())
        bundles = {s: build_bundle(work / "bundles", s, args.rules) for s in (1, 2)}
        results["bundle_bytes"] = bundles[2].stat().st_size
        publish_bundle(repo, bundles[1])
        tokens = TokenStore.for_workspace(workspace)
        tower_tokens = {f"t{t:03d}": tokens.add(f"t{t:03d}")[1] for t in range(args.towers)}

        port = free_port()
        profile = ([sys.executable, "-m", "cProfile", "-o", str(args.profile_server)]
                   if args.profile_server else [])
        server = subprocess.Popen([*profile, str(Path(sys.executable).with_name("workbench")), "--home",
                                   str(workspace.home), "serve", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/v1/health", server)
        if args.nice_agents:
            os.nice(args.nice_agents)           # this process only: the server keeps its own
        etag = httpx.get(f"{base}/repository/metadata/timestamp.json").headers["etag"]
        root_version = repo.root_md().signed.version
        agents = [SimAgent(tower=t, server=f"s{s:02d}", token=token, serial=1, etag=etag,
                           root_version=root_version)
                  for t, token in tower_tokens.items() for s in range(args.servers)]
        fleet = Fleet("127.0.0.1", port, agents, args.poll, long_poll=args.long_poll)
        print(f"{count} agents polling {base} every {args.poll:g} s (+-10 %); bundle "
              f"{results['bundle_bytes']} bytes ({args.rules} rules)")
        results.update(asyncio.run(_drive(fleet, repo, bundles[2], server.pid, base, args)))
        if args.skip_peer:
            raise _SkipPeer

        print("one real TowerAgent (TUF client, unpack, self-test) pulls the same update ...")
        real = work / "real-agent"
        (real / "root.json").parent.mkdir(parents=True)
        shutil.copy(repo.metadata_dir / "1.root.json", real / "root.json")
        publish_bundle(repo, build_bundle(work / "bundles", 3, args.rules))
        agent = TowerAgent(TowerConfig(repository_url=f"{base}/repository",
                                       trusted_root=real / "root.json", install_dir=real / "install",
                                       tower="t000", server="real", token=tower_tokens["t000"]))
        pulled = agent.pull()
        results["real_agent"] = {"state": pulled.state, "serial": pulled.serial,
                                 "bytes_downloaded": pulled.bytes_downloaded,
                                 "requests": pulled.requests, "seconds": pulled.duration_seconds}
        quiet = agent.pull()
        results["real_agent_no_change"] = {"checked": quiet.checked, "requests": quiet.requests,
                                           "seconds": quiet.duration_seconds}

        print("peer: conditional GETs of timestamp.json, workbench serve vs static server ...")
        nginx, nginx_port, prefix = start_nginx(repo.root, work)
        procs.append(nginx)
        peer_name = "nginx 1 worker" if prefix else "python http.server"
        ours = saturate("workbench serve (uvicorn, 1 process)", server.pid, port, "/repository",
                        connections=args.connections, seconds=args.saturate_seconds)
        theirs = saturate(peer_name, nginx.pid, nginx_port, prefix,
                          connections=args.connections, seconds=args.saturate_seconds)
        results["peer"] = {"workbench": ours, "static": theirs,
                           "ratio_requests_per_second": round(ours["requests_per_second"]
                                                              / theirs["requests_per_second"], 3),
                           "ratio_cpu_per_request": round(ours["server_cpu_us_per_request"]
                                                          / theirs["server_cpu_us_per_request"], 2)}
    except _SkipPeer:
        pass
    finally:
        for proc in procs:
            if args.profile_server and proc is procs[0]:
                # uvicorn re-raises the signal it stopped on: SIGTERM would kill the process
                # before cProfile writes its file, SIGINT unwinds through it
                proc.send_signal(signal.SIGINT)
            else:
                proc.terminate()
            try:
                proc.wait(timeout=60 if args.profile_server else 10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    _print(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


async def _drive(fleet: Fleet, repo: UpdateRepository, bundle: Path, server_pid: int, base: str,
                 args: argparse.Namespace) -> dict[str, Any]:
    runner = asyncio.create_task(fleet.run())
    out: dict[str, Any] = {}
    await asyncio.sleep(args.poll * 1.2)             # every agent has started polling
    stats = fleet.stats
    polls0, requests0, errors0 = stats.no_change_polls, stats.requests, stats.errors
    wire0 = stats.no_change_wire
    stats.latencies.clear()
    cpu0, t0 = tree_cpu_seconds(server_pid), time.monotonic()
    await asyncio.sleep(args.poll * args.window)
    cpu, elapsed = tree_cpu_seconds(server_pid) - cpu0, time.monotonic() - t0
    polls, requests = stats.no_change_polls - polls0, stats.requests - requests0
    lat = sorted(stats.latencies)
    out["steady"] = {
        "seconds": round(elapsed, 1), "no_change_polls": polls, "requests": requests,
        "requests_per_second": round(requests / elapsed), "polls_per_second": round(polls / elapsed),
        "server_cpu_seconds": round(cpu, 2),
        "server_cpu_share_of_one_core": round(cpu / elapsed, 3),
        "server_cpu_ms_per_no_change_poll": round(cpu / polls * 1000, 3) if polls else None,
        "requests_per_no_change_poll": 2,
        "wire_bytes_per_no_change_poll": round((stats.no_change_wire - wire0) / polls) if polls else None,
        "timestamp_get_ms_p50": round(statistics.median(lat) * 1000, 2) if lat else None,
        "timestamp_get_ms_p99": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
        "errors": stats.errors - errors0}
    print(f"steady: {out['steady']}")

    load_at_publish = os.getloadavg()
    published = time.monotonic()
    own0 = _own_cpu_seconds()
    await asyncio.to_thread(publish_bundle, repo, bundle)
    cpu0 = tree_cpu_seconds(server_pid)
    deadline = published + args.poll * 6
    while any(a.serial < 2 for a in fleet.agents) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    done = time.monotonic()
    herd_server_cpu = tree_cpu_seconds(server_pid) - cpu0
    herd_own_cpu = _own_cpu_seconds() - own0
    behind = sum(a.serial < 2 for a in fleet.agents)
    times = sorted(a.updated_at - published for a in fleet.agents if a.serial >= 2)
    if args.long_poll:
        await asyncio.sleep(32)     # the spread reports, before the board is read
    fleet.stopping = True
    async with httpx.AsyncClient() as client:
        board = (await client.get(f"{base}/v1/fleet", params={"servers": "false"}, timeout=30)).json()
        t_get = time.perf_counter()
        full = await client.get(f"{base}/v1/fleet", timeout=30)      # httpx asks for gzip
        fleet_get_ms = (time.perf_counter() - t_get) * 1000
        t_get = time.perf_counter()
        plain = await client.get(f"{base}/v1/fleet", timeout=30,
                                 headers={"accept-encoding": "identity"})
        fleet_plain_ms = (time.perf_counter() - t_get) * 1000
    wires = [a.update_wire for a in fleet.agents if a.serial >= 2]
    bodies = [a.update_bodies for a in fleet.agents if a.serial >= 2]
    out["rollout"] = {
        "all_on_new_serial": behind == 0, "behind": behind,
        "seconds_until_all": round(done - published, 2),
        "poll_intervals_until_all": round((done - published) / args.poll, 2),
        "seconds_p50": round(times[len(times) // 2], 2) if times else None,
        "seconds_p95": round(times[int(len(fleet.agents) * 0.95) - 1], 2)
        if len(times) >= int(len(fleet.agents) * 0.95) else None,
        "share_within_10_s": round(sum(t <= 10 for t in times) / len(fleet.agents), 4),
        "server_cpu_seconds": round(tree_cpu_seconds(server_pid) - cpu0, 2),
        # from the publish until the last agent has it: the herd, without the later reports
        "server_cpu_seconds_until_all": round(herd_server_cpu, 2),
        "load_generator_cpu_seconds_until_all": round(herd_own_cpu, 2),
        "load_average_at_publish": [round(x, 2) for x in load_at_publish],
        "bytes_per_agent_per_update_wire": round(statistics.mean(wires)) if wires else None,
        "bytes_per_agent_per_update_bodies": round(statistics.mean(bodies)) if bodies else None,
        "fleet_board_serials": board["serials"], "fleet_board_counts": board["counts"],
        "get_fleet_ms_with_all_servers": round(fleet_get_ms, 1),
        "get_fleet_ms_identity": round(fleet_plain_ms, 1),
        "get_fleet_bytes": len(full.content), "get_fleet_bytes_gzip_wire": full.num_bytes_downloaded,
        "get_fleet_bytes_identity_wire": plain.num_bytes_downloaded, "errors": stats.errors}
    print(f"rollout: {out['rollout']}")
    await asyncio.wait_for(runner, timeout=args.poll * 2)

    records = [r for r in _records(repo)]
    t_sum = time.perf_counter()
    for _ in range(10):
        summarize(records, 2)
    out["classify_ms_per_fleet"] = round((time.perf_counter() - t_sum) / 10 * 1000, 2)
    out["classified_servers"] = len(records)
    return out


def _own_cpu_seconds() -> float:
    """User + system CPU of this process (the load generator and the publish)."""
    usage = os.times()
    return usage.user + usage.system


def _records(repo: UpdateRepository) -> list[Any]:
    from workbench.distribute.fleet import FleetStore

    with FleetStore(repo.root.parent / "fleet.sqlite") as store:
        return store.records()


def _print(results: dict[str, Any]) -> None:
    print("\n" + json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
