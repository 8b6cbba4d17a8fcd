"""Checkpoints: exact round trip, atomic replacement rules, corrupt and half-written folders skipped."""

from __future__ import annotations

from pathlib import Path

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
    (broken / "model.safetensors").write_bytes(b"half")
    saved = checkpoint.save(tmp_path, 6, model, tok, opt, {}, keep=3)  # a broken folder is moved aside, kept
    assert saved.set_aside is not None and saved.set_aside.parent.name == "corrupt"
    assert (saved.set_aside / "model.safetensors").read_bytes() == b"half"
    assert checkpoint.load_meta(saved.path) is not None


def test_resume_moves_every_broken_newer_folder_aside(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    checkpoint.save(tmp_path, 1, model, tok, opt, {"model_name": "m"}, keep=5)
    root = checkpoint.checkpoint_dir(tmp_path)
    (root / "round-000002").mkdir()  # no meta
    third = checkpoint.save(tmp_path, 3, model, tok, opt, {"model_name": "m"}, keep=5)
    (third.path / "meta.json").write_text("{not json")
    found, warnings = checkpoint.resume_point(tmp_path, True, "m")
    assert found is not None and found.round == 1
    assert len(warnings) == 2 and all("moved to" in w and "/corrupt/" in w for w in warnings)
    assert [p.name for p in checkpoint.candidate_folders(tmp_path)] == ["round-000001"]
    assert sorted(p.name[:12] for p in (root / "corrupt").iterdir()) == ["round-000002", "round-000003"]
    assert checkpoint.latest(tmp_path) == (found, [])  # what eval reads: nothing broken is left in the way


def test_a_resume_names_the_training_settings_that_differ() -> None:
    from swarmnode.config import load_config

    base = load_config(None, [])
    meta = {"training_settings": base.training_settings(), "config_digest": base.training_digest()}
    quiet = load_config(None, [(["threads"], 2), (["status", "enabled"], False), (["run_dir"], "elsewhere")])
    assert checkpoint.settings_changed(meta, quiet) == ""  # not training settings
    changed = load_config(None, [(["train", "lr"], 5e-5), (["generation", "temperature"], 0.7)])
    assert checkpoint.settings_changed(meta, changed) == "generation.temperature 1.0 -> 0.7, train.lr 0.0001 -> 5e-05"


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    model, tok = tiny_model()
    opt = _trained_optimizer(model)
    for r in range(1, 5):
        checkpoint.save(tmp_path, r, model, tok, opt, {}, keep=2)
    names = [p.name for p in checkpoint.candidate_folders(tmp_path)]
    assert names == ["round-000004", "round-000003"]


def test_a_setting_newer_than_the_checkpoint_counts_as_unchanged_at_its_default() -> None:
    from swarmnode.config import load_config

    base = load_config(None, [])
    older = {k: v for k, v in base.training_settings().items() if k != "train.peer_gate_window"}
    meta = {"training_settings": older}
    assert checkpoint.settings_changed(meta, base) == ""  # the field did not exist: it held its default
    changed = load_config(None, [(["train", "peer_gate_window"], 3)])
    assert checkpoint.settings_changed(meta, changed) == "train.peer_gate_window 6 -> 3"


def test_a_run_on_other_tasks_resumes_with_no_setting_changed() -> None:
    """The default config's `task.params.add.digits` is an entry of a dict field, not a setting newer than a
    checkpoint of a run on `sub`: filled in from the defaults, it would make every such resume say its settings
    had changed."""
    from swarmnode.config import load_config, parse_override

    for flags in (["task.names=['sub']", "task.params={sub = {digits = 1}}"], ["model.name=smollm2-135m"]):
        config = load_config(None, [parse_override(f) for f in flags])
        assert checkpoint.settings_changed({"training_settings": config.training_settings()}, config) == ""
    sub = load_config(None, [parse_override("task.names=['sub']"), parse_override("task.params={sub = {digits = 1}}")])
    other = load_config(
        None, [parse_override("task.names=['sub']"), parse_override("task.params={sub = {digits = 2}}")]
    )
    assert checkpoint.settings_changed({"training_settings": sub.training_settings()}, other) == (
        "task.params.sub.digits 1 -> 2"
    )
