"""Behaviour log-probs and a BPE tokenizer whose encode(decode(ids)) is not always ids: a model may sample
`1` `0` where encoding the text `10` gives one token. A receiver lines an author's log-probs up with its own
tokenization of the text, so the author shares no row for a completion whose text does not re-tokenise to what it
sampled; a row that did would sit one token off (or, with as many tokens, on other tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import protocol
from swarmnode.config import TrainConfig
from swarmnode.groups import Group, wire_group
from swarmnode.learner import Learner
from swarmnode.policy.base import Completion, Prompter, SamplingParams
from swarmnode.runtime import Runtime
from swarmnode.tasks.base import TaskSet
from swarmnode.tasks.catalog import make_task
from tests.helpers import tiny_model


def merging_tokenizer() -> Any:
    """Byte-level BPE with two merges: `1` + `0` -> `10` first, then `0` + `5` -> `05`."""
    vocab = {"</s>": 0}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    vocab["10"], vocab["05"] = len(vocab), len(vocab) + 1
    core = Tokenizer(models.BPE(vocab=vocab, merges=[("1", "0"), ("0", "5")]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", pad_token="</s>")


class Scripted:
    """A backend that 'samples' fixed ids, each ending at eos: `10` as the tokenizer splits it; `10` split as
    `1` `0` (one token more than its text re-tokenises to); `105` as `1` `05` (as many tokens as `10` `5`, the
    tokenizer's split, but other ones)."""

    def __init__(self, tokenizer: Any) -> None:
        one, zero, ten, o5 = (tokenizer.convert_tokens_to_ids(t) for t in ("1", "0", "10", "05"))
        self.rows = [("10", (ten, 0)), ("10", (one, zero, 0)), ("105", (one, o5, 0))]

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        outs = [Completion(ids, text, True, tuple(-0.1 * (i + 1) for i in range(len(ids)))) for text, ids in self.rows]
        return [outs for _ in prompts]


def test_a_completion_that_does_not_re_tokenise_to_its_sampled_ids_shares_no_log_probs() -> None:
    tokenizer = merging_tokenizer()
    prompter = Prompter(tokenizer, "off", "")
    tasks = TaskSet([make_task("add", {"digits": 2})])
    runtime = Runtime(None, tokenizer, prompter, tasks, Scripted(tokenizer), "", "")  # type: ignore[arg-type]
    [group] = runtime.rollouts(tasks.draw(0, 0, 1), SamplingParams(n=3, max_new_tokens=4))
    assert group.round_trips == (True, False, False)
    assert group.logprobs is not None and [len(r) for r in group.logprobs] == [2, 3, 3]  # own training: as sampled

    wired = wire_group(group, protocol.Limits(), logprobs=True)
    assert wired.logprobs == (group.logprobs[0], (), ())

    # the receiver, same model, lines rows up with its own tokenization of the text: the shared row fits; `1` `05`
    # has as many values as `10` `5` has tokens, so sent, it would have weighted `10` by the log-prob of `1`
    model, _ = tiny_model()
    learner = Learner(model, TrainConfig(), prompter, model_name="m")
    peer = Group(group.question, group.completions, group.rewards, source="peer", model="m", logprobs=wired.logprobs)
    _, completions = learner.token_rows(peer)
    assert [len(c) for c in completions] == [2, 2, 3]
    assert learner.behaviour(peer, completions) == [group.logprobs[0], None, None]
    sent_anyway = Group(
        group.question, group.completions, group.rewards, source="peer", model="m", logprobs=group.logprobs
    )
    assert learner.behaviour(sent_anyway, completions)[2] == group.logprobs[2]  # what the guard keeps from happening
