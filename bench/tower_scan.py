"""Tower scanner benchmark: `workbench tower scan`'s engine against a bare yara-python loop.

Same messages (the demo quarantine's mail, built by `workbench.demo.seed`), same compiled
rules (a bundle of generated rules plus EICAR, loaded the way a tower loads it), same
process, one thread:

- peer: `rules.match(data=raw)` for each raw message, nothing else;
- scanner: `MessageScanner.scan(raw)`: MIME decoding, one level of archives, the rules
  over every part, the unknown-virus checks and the counters;
- and end to end: the SMTP filter on loopback (aiosmtpd), re-injecting into an SMTP sink,
  driven by smtplib clients (one connection per client, many messages each).

Prints messages/s for each and the ratio scanner/peer. Usage:

    python bench/tower_scan.py [--rules 300] [--rounds 5] [--smtp-messages 400] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiosmtpd.controller import Controller
from fleet import build_bundle, free_port

from workbench.demo.seed import seed_demo
from workbench.distribute.install import InstallDir
from workbench.distribute.scanner import CurrentRules, MessageScanner, ScanConfig
from workbench.distribute.smtp_filter import TowerScanService
from workbench.distribute.tower_config import TowerConfig
from workbench.quarantine.service import Quarantine
from workbench.release.bundle import open_bundle
from workbench.workspace import Workspace


def demo_messages(tmp: Path) -> list[bytes]:
    workspace = Workspace.resolve(tmp / "demo").ensure()
    seed_demo(workspace)
    with Quarantine.open(workspace) as q:
        return [q.raw(sha) for sha in sorted(q.index.all_shas())]


def install(install_dir: Path, bundle: Path) -> None:
    folder = InstallDir(install_dir).ensure()
    b = open_bundle(bundle)
    staging = folder.new_staging(b.manifest.serial)
    b.extract_to(staging)
    folder.switch(folder.commit(staging, b.manifest.serial))


def best_rate(fn: Any, messages: list[bytes], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for raw in messages:
            fn(raw)
        best = max(best, len(messages) / (time.perf_counter() - started))
    return best


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def smtp_rate(install_dir: Path, messages: list[bytes], total: int, clients: int) -> dict[str, Any]:
    sink = _Sink()
    sink_port = free_port()
    sink_controller = Controller(sink, hostname="127.0.0.1", port=sink_port, decode_data=False)
    sink_controller.start()
    tower = TowerConfig(repository_url="http://127.0.0.1:9/repository",
                        trusted_root=install_dir / "root.json", install_dir=install_dir,
                        tower="bench", server="s1")
    service = TowerScanService(tower, ScanConfig(listen_port=free_port(), next_hop_port=sink_port),
                               threads=2).start()
    crlf = [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in messages]
    errors: list[str] = []

    def client(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", service.port, timeout=60) as c:
            for i in range(n):
                try:
                    c.sendmail("a@example.org", ["b@example.net"], crlf[i % len(crlf)])
                except smtplib.SMTPException as exc:
                    errors.append(str(exc))
    try:
        per = total // clients
        threads = [threading.Thread(target=client, args=(per,)) for _ in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        service.stop()
        sink_controller.stop()
    return {"messages": per * clients, "clients": clients, "seconds": round(elapsed, 2),
            "messages_per_second": round(per * clients / elapsed, 1), "delivered": sink.count,
            "errors": len(errors)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smtp-messages", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-bench-scan-") as tmp_name:
        tmp = Path(tmp_name)
        messages = demo_messages(tmp)
        size = sum(map(len, messages))
        install_dir = tmp / "install"
        install(install_dir, build_bundle(tmp / "bundles", 1, args.rules))
        scanner = MessageScanner(CurrentRules(install_dir), ScanConfig())
        loaded = scanner.rules.get()
        assert loaded is not None
        rules = loaded.rules
        peer = best_rate(lambda raw: rules.match(data=raw), messages, args.rounds)
        ours = best_rate(scanner.scan, messages, args.rounds)
        verdicts = dict(scanner.stats.verdicts)
        smtp = smtp_rate(install_dir, messages, args.smtp_messages, args.clients)
        results = {
            "messages": len(messages), "mean_bytes": round(size / len(messages)),
            "rules": args.rules, "load_average": os.getloadavg()[0], "cores": os.cpu_count(),
            "peer_bare_yara_messages_per_second": round(peer, 1),
            "scanner_messages_per_second": round(ours, 1),
            "ratio_scanner_to_peer": round(ours / peer, 3),
            "parts_per_message": round(sum(len(scanner_parts(scanner, m)) for m in messages[:200])
                                       / min(200, len(messages)), 2),
            "verdicts_per_round": {k: v // args.rounds for k, v in verdicts.items()},
            "smtp_end_to_end": smtp,
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def scanner_parts(scanner: MessageScanner, raw: bytes) -> list[Any]:
    from workbench.distribute.scanner import decode_message

    return decode_message(raw, scanner.config).parts


if __name__ == "__main__":
    raise SystemExit(main())
