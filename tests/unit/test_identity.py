"""The key file: created private, never overwritten, and every broken state ends in one clear line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from swarmnode.errors import UserError
from swarmnode.identity import create_key_file, load_key_file, load_or_create


def test_create_writes_a_private_key_and_the_peer_id_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "id.pem"
    created = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_file(path)
    assert loaded.peer_id == created.peer_id
    assert loaded.public_key == created.public_key
    assert [p.name for p in path.parent.iterdir()] == ["id.pem"]  # no temporary file left behind


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "id.pem"
    path.write_text("precious")
    with pytest.raises(UserError, match="already exists"):
        create_key_file(path)
    assert path.read_text() == "precious"


def test_two_keys_have_different_peer_ids(tmp_path: Path) -> None:
    assert create_key_file(tmp_path / "a").peer_id != create_key_file(tmp_path / "b").peer_id


def test_load_or_create_creates_once(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "id.pem")
    assert load_or_create(tmp_path / "id.pem").peer_id == first.peer_id


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found; create one with `swarmnode keygen"):
        load_key_file(tmp_path / "nope.pem")


def test_world_readable_key_file(tmp_path: Path) -> None:
    path = tmp_path / "id.pem"
    create_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(UserError, match=r"readable by others \(mode 0644\); run `chmod 600"):
        load_key_file(path)


def test_corrupt_key_file(tmp_path: Path) -> None:
    path = tmp_path / "id.pem"
    create_key_file(path)
    data = path.read_bytes()
    path.write_bytes(data[:40] + b"garbage" + data[60:])
    with pytest.raises(UserError, match="corrupt"):
        load_key_file(path)


def test_wrong_key_type(tmp_path: Path) -> None:
    path = tmp_path / "rsa.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    with pytest.raises(UserError, match="not an Ed25519 key"):
        load_key_file(path)


def test_unreadable_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "id.pem"
    create_key_file(path)

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)  # tests may run as root, where chmod 000 still reads
    with pytest.raises(UserError, match=r"cannot read key file .*Permission denied"):
        load_key_file(path)


def test_directory_instead_of_key_file(tmp_path: Path) -> None:
    (tmp_path / "dir.pem").mkdir(mode=0o700)
    with pytest.raises(UserError, match="not a regular file"):
        load_key_file(tmp_path / "dir.pem")
