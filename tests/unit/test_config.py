"""Config: defaults, TOML, --set overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.config import NodeConfig, load_config, parse_override
from swarmnode.errors import UserError


def test_defaults_are_valid_and_use_the_embedded_model() -> None:
    cfg = load_config()
    assert cfg.model.name == "swarmnode/tiny-add" and cfg.silo
    assert cfg.train.clip_low == 0.2 and cfg.train.clip_high == 0.28 and cfg.train.kl_beta == 0.0


def test_toml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('seed = 3\n[train]\nlr = 5e-5\n[task]\nnames = ["add"]\nparams = {add = {digits = 3}}\n')
    cfg = load_config(path, [parse_override("train.lr=2e-5"), parse_override("generation.temperature=0.7")])
    assert cfg.seed == 3 and cfg.train.lr == 2e-5 and cfg.generation.temperature == 0.7
    assert cfg.task.params["add"] == {"digits": 3}


def test_override_values_are_read_as_toml_or_text() -> None:
    assert parse_override("run_dir=runs/x") == (["run_dir"], "runs/x")
    assert parse_override("train.betas=[0.9, 0.99]") == (["train", "betas"], [0.9, 0.99])
    assert parse_override("checkpoint.resume=false") == (["checkpoint", "resume"], False)
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_override("train.lr")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=-1", "config: train.lr: Input should be greater than 0"),
        ("generation.completions_per_question=1", "config: generation.completions_per_question"),
        ("train.no_such_field=1", "config: train.no_such_field: Extra inputs are not permitted"),
        ("seed=-4", "config: seed"),
        ("train=3", "cannot set train.lr"),
    ],
)
def test_bad_values_are_one_line_errors(override: str, message: str) -> None:
    overrides = [parse_override(override)]
    if override == "train=3":
        overrides.append(parse_override("train.lr=1"))
    with pytest.raises(UserError) as info:
        load_config(None, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3")
    with pytest.raises(UserError, match="not valid TOML"):
        load_config(bad)


def test_training_digest_ignores_where_and_how_long() -> None:
    a = NodeConfig()
    assert a.training_digest() == NodeConfig(run_dir=Path("elsewhere"), rounds=5).training_digest()
    assert a.training_digest() != load_config(None, [parse_override("train.lr=2e-4")]).training_digest()


def test_the_committed_configuration_reference_is_current() -> None:
    """docs/CONFIG.md is generated from the config model; regenerate it with
    `swarmnode config reference > docs/CONFIG.md` after changing a field."""
    from pathlib import Path

    from swarmnode.config_reference import reference

    committed = (Path(__file__).parents[2] / "docs" / "CONFIG.md").read_text()
    assert committed == reference(), "docs/CONFIG.md is stale: run `swarmnode config reference > docs/CONFIG.md`"
    for field in ("swarm.round_timeout_s", "status.token", "train.prefix_sharing", "generation.backend"):
        assert f"`{field}`" in committed
