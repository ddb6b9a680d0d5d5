"""A private Postfix from Debian on loopback ports, with its own configuration and queue.

Never the machine's mail system: ``postfix -c DIR`` runs a master of its own whose
main.cf, queue and log live in a temporary folder, listens on 127.0.0.1 only, relays
everything to one host and delivers nothing locally. ``start()`` and ``stop()`` run
Postfix's own ``postfix start`` / ``postfix stop`` for that folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None)


def why_not() -> str:
    """Why a private Postfix cannot start here ("" when it can)."""
    if POSTFIX is None:
        return "postfix is not installed (./dev test installs Debian's postfix package)"
    if os.geteuid() != 0:
        return "Postfix's master must start as root (it drops to the postfix user itself)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user (Debian's postfix package makes it)"
    return ""


# master.cf: the services a relay needs, nothing local, and the content filter pair of
# docs/distribution.md ("scan" hands mail to the filter, the second smtpd takes it back)
MASTER_CF = """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
scan      unix  -       -       n       -       4       smtp
    -o smtp_data_done_timeout=1200
    -o smtp_send_xforward_command=yes
127.0.0.1:{reinject_port} inet n - n - - smtpd
    -o content_filter=
    -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks
    -o smtpd_authorized_xforward_hosts=127.0.0.0/8
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = wb-postfix.test
mydomain = test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
content_filter = scan:[127.0.0.1]:{filter_port}
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject
smtputf8_enable = no
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""


class PostfixInstance:
    """Postfix listening on ``smtp_port``, filtering through ``filter_port``, taking filtered
    mail back on ``reinject_port`` and relaying it all to ``relay_port`` (all loopback)."""

    def __init__(self, *, smtp_port: int, filter_port: int, reinject_port: int, relay_port: int):
        # not under pytest's tmp_path: Postfix's daemons run as the postfix user and must
        # reach their queue and data folders, and pytest's folders are root's alone
        self.root = Path(tempfile.mkdtemp(prefix="wb-postfix-"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.smtp_port = smtp_port
        self.ports = {"smtp_port": smtp_port, "filter_port": filter_port,
                      "reinject_port": reinject_port, "relay_port": relay_port}
        self.started = False

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert POSTFIX is not None
        return subprocess.run([POSTFIX, "-c", str(self.conf), *args], capture_output=True, text=True,
                              timeout=60)

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> PostfixInstance:
        self.conf.mkdir()
        (self.conf / "main.cf").write_text(MAIN_CF.format(root=self.root, **self.ports))
        (self.conf / "master.cf").write_text(MASTER_CF.format(**self.ports))
        (self.root / "queue").mkdir()
        data = self.root / "data"
        data.mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(data, postfix_user.pw_uid, postfix_user.pw_gid)
        done = self._postfix("start")              # makes the queue's folders, starts master
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stderr}{done.stdout}\n{self.log()}")
        self.started = True
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postfix did not listen on {self.smtp_port}:\n{self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.started:
            pid_file = self.root / "queue" / "pid" / "master.pid"
            pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
            if self._postfix("stop").returncode != 0:
                self._postfix("abort")
            deadline = time.monotonic() + 30
            while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)                 # "postfix stop" returns before master is gone
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)
