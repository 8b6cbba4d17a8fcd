"""Tiny models built on the spot for tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swarmnode.models.tiny import byte_tokenizer, save_tiny_llama, tiny_llama


def tiny_model(hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> tuple[Any, Any]:
    tokenizer = byte_tokenizer()
    return tiny_llama(
        tokenizer, hidden=hidden, layers=layers, heads=heads, intermediate=2 * hidden, seed=seed
    ), tokenizer


def save_tiny_model(path: Path, hidden: int = 32, layers: int = 2, heads: int = 2) -> Path:
    return Path(save_tiny_llama(path, hidden=hidden, layers=layers, heads=heads, intermediate=2 * hidden))
