"""What every generation backend offers, and how text becomes token ids for this node's model.

`Prompter` is the single place that turns a question into prompt ids and a completion's text into
completion ids, so generation and the learner (including its re-tokenisation of peers' text) agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class SamplingParams:
    n: int
    """Completions per prompt."""
    max_new_tokens: int
    temperature: float = 1.0
    """0 means greedy."""
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    """Seeds the sampler for this call (reproducible runs)."""


@dataclass(frozen=True)
class Completion:
    token_ids: tuple[int, ...]
    """Generated ids, including the end-of-sequence id when generation stopped there."""
    text: str
    """The generated text without the final end-of-sequence token; other special tokens kept literally."""
    finished: bool
    """True when the model ended the completion itself (not cut at max_new_tokens)."""
    logprobs: tuple[float, ...] | None = None
    """The log-probability of each of `token_ids` under the distribution it was sampled from (the behaviour
    policy), when the backend records it."""


class PolicyBackend(Protocol):
    name: str

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order."""
        ...

    def sync_weights(self) -> None:
        """Make generation use the learner's current weights (after each update)."""
        ...


def named_end_ids(generation_config: Any) -> list[int]:
    """The eos ids a model's generation config names (an int, a list, or none)."""
    named = getattr(generation_config, "eos_token_id", None)
    return [int(named)] if isinstance(named, int) else [int(i) for i in named or []]


def end_token_ids(tokenizer: Any, generation_config: Any = None) -> tuple[int, ...]:
    """Every id that ends a completion: the generation config's eos ids first (the model's own end of turn;
    a chat model converted from GGUF may have a tokenizer naming another token), then the tokenizer's."""
    ids = named_end_ids(generation_config)
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return tuple(dict.fromkeys(ids))


class Prompter:
    """Question text -> prompt ids; completion text <-> completion ids, for one tokenizer and the end tokens of
    its model (`generation_config`, the model's, when given)."""

    def __init__(
        self,
        tokenizer: Any,
        chat_template: Literal["auto", "on", "off"],
        system_prompt: str,
        generation_config: Any = None,
        examples: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.tokenizer = tokenizer
        self.examples = tuple(examples)
        """(question, reply) turns put before the question, with a chat template only."""
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat_template == "on" and not has_template:
            raise ValueError("chat_template = 'on' but the tokenizer has no chat template")
        self.use_chat = has_template if chat_template == "auto" else chat_template == "on"
        self.system_prompt = system_prompt
        self.end_ids: tuple[int, ...] = end_token_ids(tokenizer, generation_config)
        """Generation stops at the first of these."""
        if not self.end_ids:
            raise ValueError("the tokenizer has no end-of-sequence token")
        named_ids = named_end_ids(generation_config)
        own = tokenizer.eos_token_id
        self.eos_id: int = int(own) if own is not None and (own in named_ids or not named_ids) else self.end_ids[0]
        """The end id a finished completion re-tokenised from text gets (the model's end of turn): the tokenizer's
        when the generation config names it too (Llama-3 instruct names <|end_of_text|> first, but its turn ends at
        the tokenizer's <|eot_id|>), else the generation config's first (a GGUF-rebuilt tokenizer's is wrong)."""
        pad = tokenizer.pad_token_id
        self.pad_id: int = int(pad) if pad is not None else self.eos_id

    def prompt_ids(self, question: str) -> list[int]:
        if self.use_chat:
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            for asked, answered in self.examples:
                messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
            messages.append({"role": "user", "content": question})
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return [int(i) for i in ids]
        return [int(i) for i in self.tokenizer(question, add_special_tokens=True)["input_ids"]]

    def completion_ids(self, text: str, finished: bool = True) -> list[int]:
        """Re-tokenise a completion's text (ours or a peer's) with this node's tokenizer."""
        ids = [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        return [*ids, self.eos_id] if finished else ids

    def decode(self, ids: Sequence[int]) -> Completion:
        """Cut generated ids at the first end id and decode; special tokens stay literal (with them skipped,
        `5<bos>2` would read as `52` and earn a false reward)."""
        ids = list(ids)
        end = next((i for i, token in enumerate(ids) if token in self.end_ids), None)
        if end is not None:
            ids = ids[: end + 1]
            body = ids[:-1]
        else:
            body = ids
        text = self.tokenizer.decode(body, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return Completion(tuple(ids), text, end is not None)
