"""Config: defaults, TOML, --set overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.config import HivemindConfig, NodeConfig, load_config, parse_override
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


def test_the_transport_is_a_section_chosen_by_its_type_or_its_name_alone(tmp_path: Path) -> None:
    assert load_config().swarm.transport == HivemindConfig()
    by_name = tmp_path / "name.toml"
    by_name.write_text('[swarm]\ntransport = "libp2p"\n')
    assert load_config(by_name).swarm.transport.type == "libp2p"
    assert load_config(None, [parse_override("swarm.transport=memory")]).swarm.transport.type == "memory"
    section = tmp_path / "section.toml"
    section.write_text('[swarm.transport]\ntype = "hivemind"\nnat_traversal = true\nttl_s = 60\n')
    assert load_config(section).swarm.transport == HivemindConfig(nat_traversal=True, ttl_s=60)
    # a field of the section, then the name (as `--set` and then the CLI's --transport flag do), in any order
    for sets in (
        ["swarm.transport.ttl_s=60", "swarm.transport=hivemind"],
        ["swarm.transport=hivemind", "swarm.transport.ttl_s=60"],
        ["swarm.transport.ttl_s=60"],  # hivemind unless named
    ):
        cfg = load_config(None, [parse_override(s) for s in sets])
        assert cfg.swarm.transport == HivemindConfig(ttl_s=60), sets


def test_the_old_flat_hivemind_keys_still_work_and_are_refused_with_another_transport(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[swarm]\nnat_traversal = true\nttl_s = 60\n")
    cfg = load_config(old)
    assert cfg.swarm.transport == HivemindConfig(nat_traversal=True, ttl_s=60)
    section = [parse_override(s) for s in ("swarm.transport.ttl_s=60", "swarm.transport.nat_traversal=true")]
    assert cfg.training_digest() == load_config(None, section).training_digest()
    assert cfg.training_digest() != load_config().training_digest()
    for sets, message in [
        (["swarm.transport=libp2p", "swarm.nat_traversal=true"], "config: swarm.nat_traversal is only built for the"),
        (["swarm.transport=memory", "swarm.ttl_s=60"], "config: swarm.ttl_s is only built for the hivemind"),
        (["swarm.ttl_s=60", "swarm.transport.ttl_s=30"], "swarm.ttl_s is the old name of swarm.transport.ttl_s"),
        (["swarm.transport.nat_traversal=true", "swarm.transport=libp2p"], "swarm.transport.nat_traversal: Extra"),
        (["swarm.transport.ttl_s=0"], "config: swarm.transport.ttl_s: Input should be greater than 0"),
        (["swarm.transport=carrier-pigeon"], "config: swarm.transport: Input tag 'carrier-pigeon'"),
    ]:
        with pytest.raises(UserError) as info:
            load_config(None, [parse_override(s) for s in sets])
        assert message in str(info.value) and "\n" not in str(info.value), (sets, str(info.value))
    # values that ask for nothing (the defaults) are no contradiction
    quiet = [parse_override(s) for s in ("swarm.transport=libp2p", "swarm.nat_traversal=false", "swarm.ttl_s=900")]
    assert load_config(None, quiet).swarm.transport.type == "libp2p"
