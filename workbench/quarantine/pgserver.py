"""A throwaway PostgreSQL server in a folder, for tests, benchmarks and a one-host trial.

``initdb`` in a fresh folder, the server listening only on a unix socket inside it, stopped
(and the folder removed) at the end. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (Debian's package creates it) or else ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

PORT = 5432          # only names the socket file: the folder is private to this server


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (Debian: ``apt-get install postgresql``)."""


def server_bin() -> Path:
    """The folder of ``initdb``/``pg_ctl`` of the newest PostgreSQL installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable("no PostgreSQL server found (install Debian's postgresql package)")


def _server_user() -> str | None:
    """Who runs the server: ourselves, or when we are root an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and there is no postgres or nobody user")


class LocalPostgres:
    """``with LocalPostgres() as pg: pg.address("workbench")``."""

    def __init__(self, folder: Path | None = None, *, durable: bool = False, keep: bool = False):
        """``keep``: leave the folder (its databases) at stop, and start on it again later
        instead of a fresh ``initdb`` (a benchmark's cached index)."""
        self.keep = keep
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self.folder = Path(folder or tempfile.mkdtemp(prefix="workbench-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.durable = durable
        self.user = _server_user()
        self.bin = server_bin()
        self.running = False

    @property
    def login(self) -> str:
        return self.user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(f"{argv[0]} failed: {done.stderr.strip()}\n{log}")

    def start(self) -> LocalPostgres:
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        os.chmod(self.folder, 0o700)
        if not (self.keep and (self.data / "PG_VERSION").exists()):
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.login,
                      "-E", "UTF8", "--locale=C", "--no-sync")
        options = f"-k {self.folder} -p {PORT} -c listen_addresses=''"
        if not self.durable:        # a throwaway server: a crash may lose it all
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "start")
        self.running = True
        return self

    def address(self, database: str = "postgres", *, search_path: str = "") -> str:
        """A libpq address of a database on this server (the socket, no password)."""
        query = f"host={quote(str(self.folder), safe='')}&port={PORT}"
        if search_path:
            query += "&options=" + quote(f"-c search_path={search_path}", safe="")
        return f"postgresql://{self.login}@/{database}?{query}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.address(), autocommit=True) as db:
            exists = db.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (name,)).fetchone()
            if not exists:
                db.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.address(name), autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        return self.address(name)

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
