"""Checkpoints: exact round trip, atomic replacement rules, corrupt and half-written folders skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from swarmnode import checkpoint
from swarmnode.models import load_model
from tests.helpers import tiny_model


def _trained_optimizer(model: torch.nn.Module) -> torch.optim.AdamW:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        out = model(input_ids=torch.tensor([[1, 5, 6, 7]]), labels=torch.tensor([[1, 5, 6, 7]]))
        out.loss.backward()
        opt.step()
    return opt


def test_round_trip_restores_weights_and_optimizer_exactly(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    saved = checkpoint.save(tmp_path, 3, model, tok, opt, {"model_name": "x", "policy_version": 2}, keep=2)
    found, warnings = checkpoint.latest(tmp_path)
    assert warnings == [] and found is not None and found.round == 3 and found.path == saved.path
    loaded, _ = load_model(str(found.path))
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    checkpoint.restore_optimizer(opt2, found)
    state1, state2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert state1.keys() == state2.keys()
    for index, entries in state1.items():
        for key, value in entries.items():
            assert torch.equal(value, state2[index][key]), (index, key)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    checkpoint.save(tmp_path, 1, model, tok, opt, {}, keep=3)
    newest = checkpoint.save(tmp_path, 2, model, tok, opt, {}, keep=3)
    data = bytearray((newest.path / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (newest.path / "model.safetensors").write_bytes(bytes(data))
    found, warnings = checkpoint.latest(tmp_path)
    assert found is not None and found.round == 1
    assert len(warnings) == 1 and "round-000002" in warnings[0] and "corrupt" in warnings[0]


def test_half_written_folders_are_ignored(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    checkpoint.save(tmp_path, 1, model, tok, opt, {}, keep=3)
    root = checkpoint.checkpoint_dir(tmp_path)
    (root / ".round-000002.tmp-99999").mkdir()  # a crash during a write leaves this
    (root / "round-000003").mkdir()  # no meta.json: never completed
    (root / "round-000003" / "model.safetensors").write_bytes(b"partial")
    found, warnings = checkpoint.latest(tmp_path)
    assert found is not None and found.round == 1 and len(warnings) == 1


def test_existing_checkpoint_is_never_replaced(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    first = checkpoint.save(tmp_path, 5, model, tok, opt, {"tag": "first"}, keep=3)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    again = checkpoint.save(tmp_path, 5, model, tok, opt, {"tag": "second"}, keep=3)
    assert again.meta["tag"] == "first" and first.path == again.path
    broken = checkpoint.checkpoint_dir(tmp_path) / "round-000006"
    broken.mkdir()
    with pytest.raises(RuntimeError, match="not a complete checkpoint"):
        checkpoint.save(tmp_path, 6, model, tok, opt, {}, keep=3)


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    for r in range(1, 5):
        checkpoint.save(tmp_path, r, model, tok, opt, {}, keep=2)
    names = [p.name for p in checkpoint.candidate_folders(tmp_path)]
    assert names == ["round-000004", "round-000003"]
