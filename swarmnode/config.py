"""The node's configuration: one validated pydantic tree, read from TOML and overridden by flags.

Every limit and timeout is a field with a docstring. `load_config` is the only place that turns user
input into a `NodeConfig`; errors come out as one-line `UserError`s.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from swarmnode.config_sections import (
    CONFIG_RULE,
    EMBEDDED_MODEL,
    EMBEDDED_MODELS,
    HIVEMIND_FLAT_KEYS,
    MODEL_SETTINGS,
    TYPED_SECTIONS,
    CheckpointConfig,
    EvalConfig,
    GenerationConfig,
    HivemindConfig,
    Libp2pConfig,
    MemoryConfig,
    ModelConfig,
    ScalarValue,
    Section,
    StatusConfig,
    StoreConfig,
    SwarmConfig,
    TaskConfig,
    TrainConfig,
    TransportConfig,
)
from swarmnode.errors import UserError

__all__ = [  # the sections are re-exported: they are part of this module's interface
    "CONFIG_RULE",
    "CheckpointConfig",
    "DIGEST_SKIPS_DEFAULT",
    "EMBEDDED_MODEL",
    "EMBEDDED_MODELS",
    "EvalConfig",
    "GenerationConfig",
    "HIVEMIND_FLAT_KEYS",
    "HivemindConfig",
    "Libp2pConfig",
    "MemoryConfig",
    "ModelConfig",
    "NodeConfig",
    "ScalarValue",
    "Section",
    "StatusConfig",
    "StoreConfig",
    "SwarmConfig",
    "TYPED_SECTIONS",
    "TaskConfig",
    "TrainConfig",
    "TransportConfig",
    "describe_validation_error",
    "load_config",
    "parse_override",
]

DIGEST_SKIPS_DEFAULT: dict[str, dict[str, object]] = {
    "swarm": {
        "offer_strikes": 4,
        "max_completion_tokens": None,
        "max_external_tokens": None,
        "share_logprobs": True,
        "trust_rounds": 0,
        "newcomer_share": 0.125,
        "peers_cache": 32,
        "background_sharing": False,
        "clock_offset_s": 0.0,
    },
    "train": {
        "groups_per_update": 0,
        "offpolicy_cap": 0.0,
        "offpolicy_mask": 0.0,
        "peer_min_logprob": 0.0,
        "peer_gate_window": 0,
    },
    "task": {"answer_format": "anywhere"},
    "model": {"examples": 0},
}
"""Fields the digests of older releases' checkpoints do not cover, by section: left out of the training digest
at the value that behaves as if the field did not exist, so those checkpoints match the same settings."""


NOT_TRAINING: tuple[str, ...] = (
    "run_dir",
    "rounds",
    "minutes",
    "threads",
    "checkpoint",
    "eval",
    "status",
    "generation.vllm_memory_fraction",
    "generation.vllm_max_model_len",
    "generation.vllm_cpu_kv_cache_gib",
    "swarm.transport",
    "swarm.peers",
    "swarm.peers_cache",
    "swarm.host_maddrs",
    "swarm.startup_timeout_s",
    "swarm.op_timeout_s",
    "swarm.round_timeout_s",
    "swarm.background_sharing",
    "swarm.clock_offset_s",
    "swarm.key_path",
)
"""Settings (and sections) left out of `NodeConfig.training_settings`: where a run writes, how long it runs, how
it is watched and how it reaches its peers."""


class NodeConfig(Section):
    run_dir: Path = Path("runs/default")
    """Where checkpoints, metrics.jsonl and the resolved config.json go."""
    seed: int = Field(0, ge=0, lt=2**32)
    """Seeds question order and sampling; a run is reproducible on CPU with the same seed and threads."""
    rounds: int = Field(0, ge=0)
    """Stop after this many rounds in total (0 = run until stopped)."""
    minutes: float = Field(0.0, ge=0.0)
    """Stop after this many minutes of this session (0 = no time limit)."""
    threads: int = Field(1, ge=1, le=1024)
    """torch CPU threads (one is often fastest for small models on a busy machine)."""
    silo: bool = True
    """Train alone, with no network (J = 0). `join --swarm NAME` turns it off."""
    swarm: SwarmConfig = Field(default_factory=SwarmConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("run_dir", mode="before")
    @classmethod
    def _run_dir_not_empty(cls, value: Path) -> Path:
        if str(value).strip() == "":
            raise ValueError("must not be empty")
        return value

    def training_settings(self) -> dict[str, Any]:
        """The settings that change what a run learns, flat (`train.lr`, ...): not where it writes, how long it
        runs, how it is watched or how it reaches its peers (`NOT_TRAINING`). A checkpoint records them, so a
        resume with other settings names each one that differs."""
        data = self.model_dump(mode="json")
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else key, inner)
            else:
                flat[prefix] = value

        walk("", data)
        return {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_TRAINING)}

    def training_digest(self) -> str:
        """SHA-256 over the fields that change what a run learns (not where it writes or how long it runs)."""
        data = self.model_dump(mode="json", exclude={"run_dir", "rounds", "minutes", "checkpoint", "eval"})
        # digested flat (hivemind's fields directly under swarm, the transport by its type name), the shape
        # older checkpoints' digests were made in, so they match the same settings
        transport = data["swarm"].pop("transport")
        data["swarm"] |= {key: transport.get(key, default) for key, default in HIVEMIND_FLAT_KEYS.items()}
        data["swarm"]["transport"] = transport["type"]
        for section, skips in DIGEST_SKIPS_DEFAULT.items():
            for key, default in skips.items():
                if data[section].get(key) == default:
                    del data[section][key]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value); the value is read as TOML (so 1e-4, true, [1, 2] work),
    falling back to a plain string."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, for example train.lr=5e-5")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise UserError(f"--set {text!r}: bad key {key!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def _apply(data: dict[str, Any], path: list[str], value: Any) -> None:
    target = data
    for i, step in enumerate(path[:-1]):
        nxt = target.setdefault(step, {})
        if isinstance(nxt, str) and tuple(path[: i + 1]) in TYPED_SECTIONS:
            nxt = target[step] = {"type": nxt}  # a field of the section named so far
        if not isinstance(nxt, dict):
            raise UserError(f"cannot set {'.'.join(path)}: {step} is not a section")
        target = nxt
    current = target.get(path[-1])
    if isinstance(value, str) and isinstance(current, dict) and tuple(path) in TYPED_SECTIONS:
        current["type"] = value  # the section's fields set so far stay (and are refused if they do not fit)
    else:
        target[path[-1]] = value


def with_model_settings(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a config file's fields and the flags) over the settings of the model it names (`MODEL_SETTINGS`),
    field by field; task names of the user's own replace the model's (keeping the model's parameters for a task
    both name), and task parameters merge per task."""
    model = data.get("model")
    settings = MODEL_SETTINGS.get(str(model.get("name"))) if isinstance(model, dict) else None
    if not settings:
        return data
    merged = dict(data)
    for section, values in settings.items():
        mine = merged.get(section, {})
        if not isinstance(mine, dict):
            continue  # not a section: validation says so
        combined = {**values, **mine}
        if section == "task":
            names = combined.get("names")
            params = {**values.get("params", {})}
            for task, own in (mine.get("params") or {}).items():
                params[task] = {**params.get(task, {}), **own} if isinstance(own, dict) else own
            if "names" in mine and isinstance(names, list):
                params = {task: p for task, p in params.items() if task in names or task in mine.get("params", {})}
            combined["params"] = params
            if not params and "params" not in mine:
                del combined["params"]  # the field's default
        merged[section] = combined
    return merged


def load_config(path: Path | None = None, overrides: list[tuple[list[str], Any]] | None = None) -> NodeConfig:
    """Defaults, then the named model's settings (`MODEL_SETTINGS`), then the TOML file, then the overrides (flags),
    validated once."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise UserError(f"config file {path} not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"config file {path} is not valid TOML: {exc}") from exc
    for key, value in overrides or []:
        _apply(data, key, value)
    try:
        return NodeConfig.model_validate(with_model_settings(data))
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == CONFIG_RULE:
        return f"config: {first['msg']}"
    loc = [str(p) for p in first["loc"]]
    where = ".".join(p for i, p in enumerate(loc) if tuple(loc[:i]) not in TYPED_SECTIONS) or "config"  # no tags
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    got = f" (got {first['input']!r})" if "input" in first and not isinstance(first["input"], dict) else ""
    return f"config: {where}: {first['msg']}{got}{more}"
