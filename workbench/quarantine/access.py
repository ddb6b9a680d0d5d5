"""Who may read the quarantine: file modes and the analysts' group, from ``quarantine/access.json``.

Quarantined mail is private. By default objects are ``0440`` and folders ``0750``
(the index and journal ``0640``) whatever the umask, so only the owner and the owner's
group read them. ``access.json`` names the analysts' group and may change the modes::

    {"group": "analysts", "object_mode": "0440", "folder_mode": "0750", "file_mode": "0640"}

With a group, folders also get the set-group-ID bit, so files made in them belong to it.
"""

from __future__ import annotations

import grp
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import Kind, WorkbenchError

ACCESS_NAME = "access.json"


class AccessError(WorkbenchError, ValueError):
    """``access.json`` cannot be used (unreadable, a bad mode, an unknown group)."""

    kind = Kind.CONFLICT


def _mode(value: object, default: int, key: str) -> int:
    if value is None:
        return default
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise AccessError(f"{ACCESS_NAME}: {key} {value!r} is not an octal mode like 0440") from None
    if mode & ~0o777 or (mode & 0o222 and key == "object_mode"):
        raise AccessError(f"{ACCESS_NAME}: {key} {value!r}: permission bits only"
                          + ("; objects are never writable" if key == "object_mode" else ""))
    return mode


@dataclass(frozen=True)
class Access:
    object_mode: int = 0o440
    folder_mode: int = 0o750
    file_mode: int = 0o640
    group: str = ""

    @classmethod
    def load(cls, root: Path) -> Access:
        path = Path(root) / ACCESS_NAME
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise AccessError(f"{path}: {exc}") from None
        if not isinstance(raw, dict):
            raise AccessError(f"{path}: a JSON object is expected")
        access = cls(object_mode=_mode(raw.get("object_mode"), 0o440, "object_mode"),
                     folder_mode=_mode(raw.get("folder_mode"), 0o750, "folder_mode"),
                     file_mode=_mode(raw.get("file_mode"), 0o640, "file_mode"),
                     group=str(raw.get("group") or ""))
        access.gid          # noqa: B018 - an unknown group is an error now, not at the first write
        return access

    @property
    def gid(self) -> int:
        """The analysts' group id, or -1 (leave the group as it is)."""
        if not self.group:
            return -1
        if self.group.isdigit():
            return int(self.group)
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise AccessError(f"{ACCESS_NAME}: no group {self.group!r} on this machine") from None

    def folder(self, path: Path) -> None:
        """Give a quarantine folder its mode (and group, with set-group-ID)."""
        mode = self.folder_mode | (stat.S_ISGID if self.group else 0)
        st = path.stat()
        if st.st_uid != os.geteuid():
            return          # another analyst's folder: only its owner may change it
        if self.gid >= 0 and st.st_gid != self.gid:
            os.chown(path, -1, self.gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)

    def file(self, fd: int, *, readonly: bool = False) -> None:
        """Give a file being written its final mode (and group) before any byte is in it."""
        if self.gid >= 0:
            os.fchown(fd, -1, self.gid)
        os.fchmod(fd, self.object_mode if readonly else self.file_mode)

    def path(self, path: Path) -> None:
        if path.exists():
            if self.gid >= 0:
                os.chown(path, -1, self.gid)
            os.chmod(path, self.file_mode)
