"""Turn a model name into a (model, tokenizer) pair, with one-line errors for every way that can fail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from swarmnode.config import EMBEDDED_MODELS
from swarmnode.config_sections import FETCHED_MODELS
from swarmnode.errors import UserError
from swarmnode.models.fetch import installed_folder, is_gguf_name

EMBEDDED_DIR = Path(__file__).with_name("tiny-add")
EMBEDDED = {name: Path(__file__).with_name(name.split("/", 1)[1]) for name in EMBEDDED_MODELS}
"""Each embedded model's folder."""
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_source(name: str, models_dir: Path | None = None) -> str:
    """The embedded default's folder, the converted folder of a fetched model or GGUF file (in `models_dir`, else
    `fetch.models_home()`),
    an existing local path, or the name as a hub id."""
    if name in EMBEDDED:
        if not (EMBEDDED[name] / "model.safetensors").exists():
            raise UserError(f"the embedded model {name} is missing from {EMBEDDED[name]}; reinstall swarmnode")
        return str(EMBEDDED[name])
    if name in FETCHED_MODELS or is_gguf_name(name):
        return str(installed_folder(name, models_dir))
    path = Path(name).expanduser()
    if not path.exists() and name.startswith(("/", "./", "../", "~")):
        raise UserError(f"model folder {name} does not exist")
    return str(path) if path.exists() else name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _hub_reachable(name: str, timeout_s: float = 5.0) -> None:
    """Raise a UserError at once when `name` must come from the hub and the hub cannot be reached (transformers
    would retry for about 30 s and then call the model "not found")."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or isinstance(try_to_load_from_cache(name, "config.json"), str):
        return  # transformers reads the local cache (offline: at once)
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # reached through a proxy this probe does not speak: transformers finds out itself
    where = f"model {name!r} is not a local folder or in the Hugging Face cache"
    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(
            f"{where}, and the Hugging Face hub ({constants.ENDPOINT}) cannot be reached: no network? "
            f"({exc.strerror or type(exc).__name__}); download the model where there is network and pass its "
            "folder with --model"
        ) from exc


def load_model(name: str, dtype: str = "float32") -> tuple[Any, Any]:
    """Load the tokenizer and causal LM `name` (see `resolve_model_source`)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(name)
    is_local = Path(source).exists()
    if not is_local:
        _hub_reachable(name)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        if is_local:
            raise UserError(f"model {name!r}: {source} is not a model directory ({_first_line(exc)})") from exc
        raise UserError(
            f"model {name!r} not found: no such local directory, and the Hugging Face hub could not provide it "
            f"({_first_line(exc)})"
        ) from exc
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UserError(
            f"model {name!r} is not a causal language model ({type(config).__name__}); "
            "swarmnode needs one (for example a Llama, Qwen or GPT-2 style model)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"model {name!r}: cannot load its tokenizer ({_first_line(exc)})") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
    except ValueError as exc:
        raise UserError(
            f"model {name!r} is not a causal language model ({type(config).__name__}); "
            "swarmnode needs one (for example a Llama, Qwen or GPT-2 style model)"
        ) from exc
    except OSError as exc:
        raise UserError(f"model {name!r}: cannot load its weights ({_first_line(exc)})") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
