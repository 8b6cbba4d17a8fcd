"""Generation stops on every end token the model names: its generation config's eos ids as well as its
tokenizer's. A chat model converted from GGUF (SmolLM2) has a tokenizer saying eos = `<|im_start|>` while its
turns end with `<|im_end|>`, named only by the generation config; stopping on the tokenizer's alone ran every
completion to max_new_tokens with the end-of-turn token and whatever followed it kept in the text."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from swarmnode import runtime
from swarmnode.config import load_config, parse_override
from swarmnode.policy import vllm as vllm_policy
from swarmnode.policy.base import Prompter, SamplingParams

END_OF_TURN, START_OF_TURN, END_OF_TEXT = "<|im_end|>", "<|im_start|>", "<|endoftext|>"


def chat_tokenizer(eos: str | None = START_OF_TURN) -> Any:
    """A byte-level tokenizer whose eos is `<|im_start|>` (as transformers rebuilds SmolLM2's from GGUF) and whose
    `<|im_end|>` is id 0: a model whose logits are all equal then picks it greedily (argmax takes the first)."""
    vocab = {token: i for i, token in enumerate((END_OF_TURN, START_OF_TURN, END_OF_TEXT))}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=START_OF_TURN,
        eos_token=eos,
        pad_token=END_OF_TEXT,
        additional_special_tokens=[END_OF_TURN],
    )


def chat_model(tokenizer: Any) -> Any:
    """A tiny Llama that always says `<|im_end|>` (all logits equal), whose generation config names it as the
    end token while its tokenizer does not."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(END_OF_TURN),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # every logit 0
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(END_OF_TURN)],
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chat-model")
    tokenizer = chat_tokenizer()
    chat_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_node_stops_generating_at_the_generation_configs_end_token(chat_folder: Path) -> None:
    overrides = [
        parse_override(f"model.name={chat_folder}"),
        parse_override("model.chat_template=off"),
        parse_override("generation.backend=hf"),
        parse_override("threads=1"),
    ]
    rt = runtime.build(load_config(None, overrides))
    end = rt.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    assert rt.tokenizer.eos_token_id != end  # the trap: the tokenizer names another token
    greedy_six = SamplingParams(n=1, max_new_tokens=6, temperature=0.0)
    [[greedy]] = rt.backend.generate([rt.prompter.prompt_ids("1+1=")], greedy_six)
    assert greedy.token_ids == (end,)
    assert greedy.finished
    assert greedy.text == ""  # the end token is not part of the answer text


def test_the_prompter_holds_every_end_id_and_cuts_at_the_first() -> None:
    tokenizer = chat_tokenizer()
    model = chat_model(tokenizer)
    prompter = Prompter(tokenizer, "off", "", model.generation_config)
    end, start = tokenizer.convert_tokens_to_ids(END_OF_TURN), tokenizer.convert_tokens_to_ids(START_OF_TURN)
    assert prompter.end_ids == (end, start)  # the generation config's first: the model's own end of turn
    assert prompter.eos_id == end
    a, b = tokenizer.convert_tokens_to_ids(["a", "b"])
    assert prompter.decode([a, end, b]) == prompter.decode([a, end])
    cut = prompter.decode([a, start, b, end])
    assert (cut.token_ids, cut.text, cut.finished) == ((a, start), "a", True)
    assert prompter.decode([a, b]).finished is False
    # a peer's finished text ends with the model's end of turn, not the tokenizer's misnamed eos
    assert prompter.completion_ids("ab") == [a, b, end]


def test_a_tokenizer_alone_still_works() -> None:
    tokenizer = chat_tokenizer()
    prompter = Prompter(tokenizer, "off", "")
    assert prompter.end_ids == (tokenizer.eos_token_id,) == (prompter.eos_id,)
    with pytest.raises(ValueError, match="no end-of-sequence"):
        Prompter(chat_tokenizer(eos=None), "off", "")


class FakeLLM:
    """Stands in for vllm.LLM: records the sampling parameters and answers each request with `<|im_end|>`."""

    seen: ClassVar[list[Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        pass

    def generate(self, requests: list[Any], sampling: list[Any], use_tqdm: bool) -> list[Any]:
        FakeLLM.seen += sampling
        out = types.SimpleNamespace(token_ids=[0])
        return [types.SimpleNamespace(outputs=[out] * s.n) for s in sampling]

    def collective_rpc(self, *args: Any, **kwargs: Any) -> None:
        pass

    def reset_prefix_cache(self) -> None:
        pass


def test_vllm_is_given_every_end_id(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("vllm")
    fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    fake.LLM = FakeLLM  # type: ignore[attr-defined]
    fake.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    monkeypatch.setattr(vllm_policy, "vllm_status", lambda: (True, "vLLM is installed"))
    tokenizer = chat_tokenizer()
    model = chat_model(tokenizer)
    prompter = Prompter(tokenizer, "off", "", model.generation_config)
    backend = vllm_policy.VLLMBackend.with_defaults(model, "x", prompter)
    [[completion, _]] = backend.generate([[5, 6]], SamplingParams(n=2, max_new_tokens=4))
    assert FakeLLM.seen[-1].stop_token_ids == [0, 1]
    assert completion.finished and completion.token_ids == (0,)


def test_the_turn_end_is_the_tokenizers_when_the_generation_config_names_it_too() -> None:
    from types import SimpleNamespace

    llama3 = SimpleNamespace(chat_template=None, eos_token_id=9, pad_token_id=None)  # <|eot_id|>
    prompter = Prompter(llama3, "off", "", SimpleNamespace(eos_token_id=[7, 8, 9]))  # <|end_of_text|> first
    assert prompter.end_ids == (7, 8, 9) and prompter.eos_id == 9
    gguf = SimpleNamespace(chat_template=None, eos_token_id=1, pad_token_id=None)  # <|im_start|>, wrongly
    assert Prompter(gguf, "off", "", SimpleNamespace(eos_token_id=[2])).eos_id == 2
    assert Prompter(gguf, "off", "", None).eos_id == 1
