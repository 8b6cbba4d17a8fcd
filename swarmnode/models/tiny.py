"""Tiny models built locally: a byte-level tokenizer and small Llama configs (no download needed).

Used by the embedded default model's build script and by tests that need a model of a given size.
"""

from __future__ import annotations

from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
ANSWER_TOKENS = ("<answer>", "</answer>")


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (any text encodes, no unknown tokens) with `<answer>` tags as single tokens
    and a `<bos>` added in front of every encoded text."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    tokenizer.add_tokens(list(ANSWER_TOKENS))
    return tokenizer


def save_tiny_llama(folder: Any, **sizes: int) -> Any:
    """Build a byte-tokenizer Llama of the given sizes (see `tiny_llama`) and save it as a model folder."""
    tokenizer = byte_tokenizer()
    model = tiny_llama(tokenizer, **sizes)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_llama(
    tokenizer: Any,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    intermediate: int = 512,
    max_positions: int = 256,
    seed: int = 0,
) -> Any:
    """A randomly initialised Llama-architecture causal LM sized for tests and the embedded default."""
    import torch

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)
