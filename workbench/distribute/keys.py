"""The signing keys of the update repository: one Ed25519 key per TUF role, kept as PEM files.

``state/keys/<role>.pem`` (PKCS#8, mode 0600, folder 0700). Publishing needs only the
targets, snapshot and timestamp keys; the root key is needed to create the repository,
rotate keys and renew the root, so it can live offline (``--root-key PATH``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from workbench.errors import Kind, WorkbenchError

ROLES = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES = ("targets", "snapshot", "timestamp")


class KeyringError(WorkbenchError):
    """A key that is missing, unreadable or not the one the root metadata trusts."""

    kind = Kind.CONFLICT


class KeyRing:
    """The folder of private keys."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, role: str) -> Path:
        if role not in ROLES:
            raise KeyringError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        return self.folder / f"{role}.pem"

    def has(self, role: str) -> bool:
        return self.path(role).is_file()

    def generate(self, role: str, *, overwrite: bool = False) -> CryptoSigner:
        """A new Ed25519 key for ``role``, written before it is returned."""
        signer = CryptoSigner.generate_ed25519()
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        write_private_key(self.path(role), signer.private_bytes, overwrite=overwrite)
        return signer

    def signer(self, role: str, trusted: Iterable[Key], *, path: Path | None = None) -> CryptoSigner:
        """Load the key for ``role`` (from ``path`` if given) and check the root trusts it."""
        key_path = Path(path) if path else self.path(role)
        if not key_path.is_file():
            hint = (" (the root key may be offline: pass --root-key PATH)" if role == "root" else "")
            raise KeyringError(f"the {role} key is not at {key_path}{hint}")
        return load_signer(key_path, trusted, role=role)

    def retire(self, role: str) -> None:
        """Remove a rotated-out key: it no longer signs anything the towers accept."""
        self.path(role).unlink(missing_ok=True)


def write_private_key(path: Path, pem: bytes, *, overwrite: bool = False) -> None:
    """Write a private key readable only by its owner, atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        if not overwrite and path.exists():
            raise KeyringError(f"{path} exists; refusing to overwrite a key")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_signer(path: Path, trusted: Iterable[Key], *, role: str) -> CryptoSigner:
    try:
        private = load_pem_private_key(Path(path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyringError(f"cannot read the {role} key {path}: {exc}") from None
    public = SSlibKey.from_crypto(private.public_key())
    for key in trusted:
        if isinstance(key, SSlibKey) and key.keyval == public.keyval:
            return CryptoSigner(private, key)
    raise KeyringError(f"{path} is not a {role} key this repository's root trusts")
