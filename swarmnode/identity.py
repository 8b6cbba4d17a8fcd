"""The node's Ed25519 identity: a private key file (PKCS#8 PEM, mode 0600) and the peer id derived from it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from swarmnode.errors import UserError, file_in_the_way

DEFAULT_KEY_PATH = Path("~/.swarmnode/identity.pem")


@dataclass(frozen=True)
class Identity:
    key: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes_raw()

    @property
    def peer_id(self) -> str:
        return protocol.peer_id(self.public_key)


def create_key_file(path: Path) -> Identity:
    """Write a new key to `path` with mode 0600. Never overwrites: an existing file is an error.

    The key is written to a private temporary file in the same folder and hard-linked into place, so the
    target either does not exist or holds a complete key, even if the process dies half-way.
    """
    path = path.expanduser()
    if path.exists():
        raise UserError(f"key file {path} already exists; refusing to overwrite it (use another --out)")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise UserError(f"key file {path}: {blocker} is a file, not a folder; choose another path for the key")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UserError(f"cannot create folder {path.parent}: {exc.strerror}") from exc
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # atomic, and fails if the target appeared meanwhile
    except FileExistsError as exc:
        raise UserError(f"key file {path} already exists; refusing to overwrite it (use another --out)") from exc
    except OSError as exc:
        raise UserError(f"cannot write key file {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return Identity(key, path)


def load_key_file(path: Path) -> Identity:
    """Read a key file, refusing one that others can read or that is not an Ed25519 private key."""
    path = path.expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise UserError(f"key file {path} not found; create one with `swarmnode keygen --out {path}`") from exc
    except OSError as exc:
        raise UserError(f"cannot read key file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise UserError(f"key file {path} is not a regular file")
    if mode & 0o077:
        raise UserError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"key file {path} is corrupt or encrypted: not an unencrypted PEM private key") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others for odd inputs
        raise UserError(f"key file {path} is corrupt: {type(exc).__name__}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return Identity(key, path)


def load_or_create(path: Path) -> Identity:
    """The key at `path`, created on first use (what `swarmnode join` does)."""
    return load_key_file(path) if path.expanduser().exists() else create_key_file(path)
