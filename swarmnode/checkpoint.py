"""Checkpoints that survive a crash at any instant: model (safetensors), optimizer state (safetensors,
no pickle anywhere) and JSON meta, written into a temporary folder and renamed into place.

Layout: `<run_dir>/checkpoints/round-000025/` holds a full Hugging Face model folder (so `swarmnode eval
--model` can read it), `optimizer.safetensors` and `meta.json`. meta.json is written last and lists the
SHA-256 of every other file; a folder whose meta is missing or whose hashes do not match is skipped on
resume and moved aside (into `checkpoints/corrupt/`, kept, never deleted), so that no broken folder can stop
a node from restarting by itself; an intact checkpoint is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from swarmnode.errors import UserError

if TYPE_CHECKING:
    from swarmnode.config import NodeConfig

FORMAT = 1
PREFIX = "round-"
META = "meta.json"
OPTIMIZER = "optimizer.safetensors"
CORRUPT = "corrupt"
"""The folder under `checkpoints/` that broken checkpoints are moved into (kept for the user to inspect)."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    round: int
    meta: dict[str, Any]
    set_aside: Path | None = None
    """Where a broken folder of the same round was moved before this one was written (None: there was none)."""


WRITE_PAUSE_S = 0.0
"""Fault injection for tests, never a user setting: a test that starts a node sets it in that process
(tests/integration/test_silo_node.py) to kill the node in the middle of a checkpoint write."""


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            key = f"state.{index}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().contiguous().clone()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save(
    run_dir: Path,
    round_: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    keep: int,
) -> Checkpoint:
    """Write the checkpoint of `round_` atomically and prune old ones. Returns the new checkpoint."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{round_:06d}"
    moved = None
    if final.exists():  # never replace a checkpoint; this one already holds that round
        existing = load_meta(final)
        if existing is not None:
            return Checkpoint(final, round_, existing)
        moved = set_aside(final)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tensors, optim_meta = _optimizer_tensors(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(tmp / OPTIMIZER))
        if WRITE_PAUSE_S:
            time.sleep(WRITE_PAUSE_S)  # fault-injection tests kill the process here
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        full_meta = {
            "format": FORMAT,
            "round": round_,
            "saved_at": time.time(),
            **meta,
            "optimizer": optim_meta,
            "files": files,
        }
        (tmp / META).write_text(json.dumps(full_meta, indent=2, sort_keys=True) + "\n")
        _fsync_tree(tmp)
        os.rename(tmp, final)
        _fsync_tree(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(root, keep)
    return Checkpoint(final, round_, full_meta, moved)


def set_aside(folder: Path) -> Path:
    """Move a broken checkpoint folder into `checkpoints/corrupt/` (a new name there, never over another)."""
    aside = folder.parent / CORRUPT
    aside.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = aside / f"{folder.name}-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = aside / f"{folder.name}-{stamp}-{suffix}"
    os.rename(folder, target)
    return target


def load_meta(folder: Path) -> dict[str, Any] | None:
    """The meta of a complete, intact checkpoint folder; None if anything is missing or corrupt."""
    try:
        meta = json.loads((folder / META).read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or type(meta.get("round")) is not int:
            return None
        files = meta["files"]
        for name, digest in files.items():
            if "/" in name or sha256_file(folder / name) != digest:
                return None
        return meta
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or broken parts; any other OSError (permissions, I/O) is not a verdict on the folder


def candidate_folders(run_dir: Path) -> list[Path]:
    """Checkpoint folders in the run directory, newest first (intact or not)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)), reverse=True)


def latest(run_dir: Path) -> tuple[Checkpoint | None, list[str]]:
    """The newest intact checkpoint and a warning line for each newer one that was skipped."""
    warnings: list[str] = []
    for folder in candidate_folders(run_dir):
        meta = load_meta(folder)
        if meta is None:
            warnings.append(f"skipping checkpoint {folder}: incomplete or corrupt")
            continue
        return Checkpoint(folder, meta["round"], meta), warnings
    return None, warnings


def resume_point(run_dir: Path, resume: bool, model_name: str) -> tuple[Checkpoint | None, list[str]]:
    """The checkpoint a node starts from (None: from scratch) and a line for each newer folder that was
    broken and moved aside (`set_aside`): the node writes those rounds again, so nothing may stay in their
    place. A run directory of another model, or one with checkpoints while resume is off, is a UserError."""
    if not resume:
        if candidate_folders(run_dir):
            raise UserError(f"{run_dir} already holds checkpoints and resume is off; use another --run-dir")
        return None, []
    found: Checkpoint | None = None
    broken: list[Path] = []
    for folder in candidate_folders(run_dir):
        try:
            meta = load_meta(folder)
        except OSError as exc:
            raise UserError(f"cannot read checkpoint {folder} ({exc.strerror or exc}); check its permissions") from exc
        if meta is not None:
            found = Checkpoint(folder, meta["round"], meta)
            break
        broken.append(folder)
    if found is not None and found.meta.get("model_name") != model_name:
        held = found.meta.get("model_name")
        raise UserError(f"{run_dir} holds a run of model {held!r}, not {model_name!r}; use another --run-dir")
    warnings = []
    for folder in broken:  # only once the run is known to be this node's
        try:
            warnings.append(moved_line(folder, set_aside(folder)))
        except OSError as exc:
            raise UserError(f"checkpoint {folder} is incomplete or corrupt and cannot be moved aside: {exc}") from exc
    return found, warnings


def moved_line(folder: Path, moved: Path) -> str:
    """What the node says of a broken checkpoint folder it moved aside."""
    return f"checkpoint {folder} is incomplete or corrupt: moved to {moved}"


def settings_changed(meta: dict[str, Any], config: NodeConfig) -> str:
    """Which training settings differ between a checkpoint and `config`, as `key old -> new, ...`; '' if none.
    A checkpoint of an older release, without recorded settings, carries only their digest."""
    saved = meta.get("training_settings")
    if not isinstance(saved, dict):
        same = meta.get("config_digest") == config.training_digest()
        return "" if same else "this checkpoint records only a digest of them, not which"
    now = config.training_settings()

    # a setting added after the checkpoint was written held its default then (DIGEST_SKIPS_DEFAULT's rule): a field
    # the checkpoint has no key of at all (not an entry of a dict field it has, such as task.params' other tasks)
    def field(key: str) -> str:
        return ".".join(key.split(".")[:2])

    recorded = {field(k) for k in saved}
    saved = {**{k: v for k, v in type(config)().training_settings().items() if field(k) not in recorded}, **saved}
    keys = sorted(k for k in saved.keys() | now.keys() if saved.get(k, "unset") != now.get(k, "unset"))
    shown = [f"{k} {json.dumps(saved.get(k, 'unset'))} -> {json.dumps(now.get(k, 'unset'))}" for k in keys[:6]]
    return ", ".join(shown) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


def prune(root: Path, keep: int) -> None:
    intact = [p for p in sorted(root.iterdir(), reverse=True) if p.name.startswith(PREFIX) and (p / META).exists()]
    for old in intact[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(f".{PREFIX}*.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid != str(os.getpid()):
            shutil.rmtree(stale, ignore_errors=True)


def restore_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    """Load the optimizer state saved beside the model; raises ValueError if it does not fit."""
    tensors = load_file(str(checkpoint.path / OPTIMIZER))
    optim_meta = checkpoint.meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(optim_meta["scalars"].items()):
        if not key.startswith("state."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    ordered = {index: state[index] for index in sorted(state)}
    optimizer.load_state_dict({"state": ordered, "param_groups": optim_meta["param_groups"]})
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
