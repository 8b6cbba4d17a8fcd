"""The learner: log-probs that match generation, no step without signal, micro-batching that does not
change the update, and an update that moves the policy toward rewarded completions."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from protocol import TaskRef
from swarmnode.config import TrainConfig
from swarmnode.groups import Group
from swarmnode.learner import Learner, completion_log_probs, pack, pack_shared
from swarmnode.policy import Prompter, SamplingParams
from swarmnode.policy.hf import HFBackend
from swarmnode.tasks import Question
from tests.helpers import tiny_model


def text_group(prompt: str, completions: tuple[str, ...], rewards: tuple[float, ...]) -> Group:
    """A peer's group as text (the learner tokenises it)."""
    return Group(Question(TaskRef("add", 0, 0), prompt, ""), completions, rewards, source="peer")


def _setup() -> tuple[torch.nn.Module, Prompter]:
    model, tok = tiny_model()
    return model, Prompter(tok, "off", "")


def test_log_probs_match_the_generating_model_with_left_padding() -> None:
    model, prompter = _setup()
    prompts = [prompter.prompt_ids("7+5="), prompter.prompt_ids("123+456=")]  # different lengths
    ids_a = torch.tensor([prompts[0]])
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([[prompter.pad_id] * 4 + prompts[0], prompts[1]]),
            attention_mask=torch.tensor([[0] * 4 + [1] * len(prompts[0]), [1] * len(prompts[1])]),
            do_sample=False,
            max_new_tokens=5,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=prompter.pad_id,
            eos_token_id=-1,
        )
    generated = out.sequences[:, len(prompts[1]) :]
    logits = torch.stack(out.logits, dim=1).float()
    expected = torch.log_softmax(logits, -1).gather(-1, generated.unsqueeze(-1)).squeeze(-1)
    batch = pack([(prompts[0], generated[0].tolist()), (prompts[1], generated[1].tolist())], prompter.pad_id)
    with torch.no_grad():
        got = completion_log_probs(model, batch)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    del ids_a


def test_no_signal_means_no_step() -> None:
    model, prompter = _setup()
    before = copy.deepcopy(model.state_dict())
    learner = Learner(model, TrainConfig(), prompter)
    group = text_group("1+1=", ("2", "3"), (1.0, 1.0))
    stats = learner.step([group, group])
    assert not stats.stepped and stats.groups == 0 and learner.updates == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def _groups(prompter: Prompter) -> list[Group]:
    del prompter  # text groups: the learner tokenises them
    return [
        text_group("1+1=", ("<answer>2</answer>", "<answer>3</answer>", "zz"), (1.0, 0.0, 0.0)),
        text_group("40+2=", ("<answer>42</answer>", "<answer>41</answer>"), (1.0, 0.0)),
    ]


def _gradients(micro_batch_size: int, prefix_sharing: bool = True) -> list[torch.Tensor]:
    """The gradient the optimizer would apply (Adam's first step is sign-like, so compare gradients)."""
    model, prompter = _setup()
    config = TrainConfig(micro_batch_size=micro_batch_size, prefix_sharing=prefix_sharing)
    learner = Learner(model, config, prompter)
    captured: list[torch.Tensor] = []

    def capture(*args: object, **kwargs: object) -> None:
        captured.extend(p.grad.clone() for p in model.parameters() if p.grad is not None)

    learner.optimizer.step = capture  # type: ignore[method-assign]
    learner.step(_groups(prompter))
    return captured


def test_micro_batch_size_does_not_change_the_update() -> None:
    whole, pieces = _gradients(64), _gradients(1)
    assert len(whole) == len(pieces) > 0
    for a, b in zip(whole, pieces, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_prefix_sharing_gives_the_same_update_as_full_rows() -> None:
    """The shared prompt cache carries gradients back into the prompt's forward pass: dropping that path
    (or misplacing positions) would change these gradients."""
    full = _gradients(64, prefix_sharing=False)
    for size in (64, 2, 1):
        shared = _gradients(size, prefix_sharing=True)
        assert len(shared) == len(full) > 0
        for a, b in zip(shared, full, strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4), (a - b).abs().max()


def test_shared_prefix_log_probs_match_full_rows() -> None:
    model, prompter = _setup()
    prompt = prompter.prompt_ids("12+30=")
    completions = [prompter.completion_ids(t) for t in ("<answer>42</answer>", "4", "<answer>x")]
    with torch.no_grad():
        shared = completion_log_probs(model, pack_shared(prompt, completions, prompter.pad_id))
        for i, c in enumerate(completions):
            full = completion_log_probs(model, pack([(prompt, c)], prompter.pad_id))[0]
            assert torch.allclose(shared[i, : len(c)], full, atol=1e-5), (shared[i, : len(c)] - full).abs().max()


def test_updates_raise_the_advantage_weighted_log_prob() -> None:
    model, prompter = _setup()
    groups = _groups(prompter)
    learner = Learner(model, TrainConfig(lr=1e-3, peer_min_logprob=0.0), prompter)  # untrained: all unlikely

    def objective() -> float:
        total = 0.0
        with torch.no_grad():
            for g in groups:
                rewards = torch.tensor(list(g.rewards))
                adv = (rewards - rewards.mean()) / rewards.std()
                prompt, completions = learner.token_rows(g)
                for c, a in zip(completions, adv.tolist(), strict=True):
                    total += a * float(completion_log_probs(model, pack([(prompt, c)], prompter.pad_id)).sum())
        return total

    values = [objective()]
    for _ in range(3):
        stats = learner.step(groups)
        assert stats.stepped and stats.groups == 2 and stats.completions == 5
        values.append(objective())
    assert values[-1] > values[0] and learner.updates == 3


def test_hf_backend_shapes_and_seeded_sampling() -> None:
    model, prompter = _setup()
    backend = HFBackend(model, prompter, max_batch_sequences=4)
    prompts = [prompter.prompt_ids(q) for q in ("1+1=", "22+33=", "5+5=")]
    params = SamplingParams(n=3, max_new_tokens=4, seed=7)
    out = backend.generate(prompts, params)
    assert [len(g) for g in out] == [3, 3, 3]
    for group in out:
        for c in group:
            assert 1 <= len(c.token_ids) <= 4
            assert c.finished == (c.token_ids[-1] == prompter.eos_id)
    assert out == backend.generate(prompts, params)  # same seed, same samples


def test_hf_sampling_uses_the_full_distribution_unless_top_k_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers filters to its default top-k of 50 unless told otherwise; the learner scores samples
    under the full softmax, so sampling must not be silently truncated."""
    import transformers.generation.utils as gen_utils

    model, prompter = _setup()
    seen: list[list[str]] = []
    original = gen_utils.GenerationMixin._get_logits_processor

    def spy(self: object, generation_config: object, *args: object, **kwargs: object) -> object:
        processors = original(self, generation_config, *args, **kwargs)  # type: ignore[arg-type]
        seen.append([type(p).__name__ for p in processors])
        return processors

    monkeypatch.setattr(gen_utils.GenerationMixin, "_get_logits_processor", spy)
    backend = HFBackend(model, prompter)
    prompts = [prompter.prompt_ids("1+1=")]
    backend.generate(prompts, SamplingParams(n=2, max_new_tokens=2, temperature=1.0, seed=0))
    assert not any("TopK" in name or "TopP" in name for name in seen[-1]), seen[-1]
    backend.generate(prompts, SamplingParams(n=2, max_new_tokens=2, temperature=1.0, top_k=5, seed=0))
    assert any("TopK" in name for name in seen[-1]), seen[-1]


def test_own_groups_are_trained_on_as_sampled_and_peers_text_is_tokenised() -> None:
    """Decoding and encoding again need not give the sampled tokens: own completions keep their ids."""
    model, prompter = _setup()
    learner = Learner(model, TrainConfig(), prompter)
    sampled = ((7, 7, 7), (8, 9))
    own = Group(Question(TaskRef("add", 0, 0), "1+1=", "2"), ("a", "b"), (1.0, 0.0), token_ids=sampled)
    assert learner.token_rows(own) == (prompter.prompt_ids("1+1="), list(sampled))
    peer = text_group("1+1=", ("a", "b"), (1.0, 0.0))
    assert learner.token_rows(peer)[1] == [prompter.completion_ids("a"), prompter.completion_ids("b")]


def test_groups_per_update_splits_a_round_into_steps_on_its_own_groups() -> None:
    """Five informative groups with groups_per_update = 2: three optimizer steps, on groups [0, 3], [1, 4] and
    [2] (spread evenly); a group without signal is not counted; 0 keeps one step on all."""
    model, prompter = _setup()
    groups = [text_group(f"{i}+1=", (f"<answer>{i + 1}</answer>", "<answer>0</answer>"), (1.0, 0.0)) for i in range(5)]
    quiet = text_group("9+9=", ("x", "y"), (0.0, 0.0))
    learner = Learner(model, TrainConfig(groups_per_update=2), prompter)
    seen: list[list[str]] = []
    real_update = learner._update

    def spy(useful: list[Group]) -> object:
        seen.append([g.question.text for g in useful])
        return real_update(useful)

    learner._update = spy  # type: ignore[method-assign,assignment]
    stats = learner.step([*groups[:2], quiet, *groups[2:]])
    assert seen == [["0+1=", "3+1="], ["1+1=", "4+1="], ["2+1="]]
    assert learner.updates == 3 and stats.stepped and stats.groups == 5 and stats.completions == 10
    whole = Learner(copy.deepcopy(model), TrainConfig(), prompter)
    assert whole.step(groups).groups == 5 and whole.updates == 1


def test_recorded_behaviour_log_probs_match_the_learner_at_the_sampling_temperature() -> None:
    """What generation records for each sampled token is what the learner computes for it, at temperature 0.7
    (so the learner's importance ratio pi / mu is 1 on its own fresh samples)."""
    model, prompter = _setup()
    backend = HFBackend(model, prompter)
    prompts = [prompter.prompt_ids(q) for q in ("1+1=", "22+33=")]
    out = backend.generate(prompts, SamplingParams(n=3, max_new_tokens=6, temperature=0.7, seed=3))
    for prompt, group in zip(prompts, out, strict=True):
        for c in group:
            assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
            with torch.no_grad():
                got = completion_log_probs(model, pack([(prompt, c.token_ids)], prompter.pad_id), 0.7)[0]
            assert torch.allclose(got, torch.tensor(c.logprobs), atol=1e-4), (got, c.logprobs)
    top_k = backend.generate(prompts, SamplingParams(n=2, max_new_tokens=3, top_k=5, seed=3))
    assert all(c.logprobs is None for g in top_k for c in g)  # not the full softmax: nothing recorded


def test_behaviour_log_probs_are_used_only_where_they_line_up() -> None:
    model, prompter = _setup()
    learner = Learner(model, TrainConfig(), prompter, model_name="m")
    texts = ("<answer>2</answer>", "<answer>3</answer>")
    ids = [prompter.completion_ids(t) for t in texts]
    rows = tuple(tuple(-0.5 for _ in c) for c in ids)
    same = Group(Question(TaskRef("add", 0, 0), "1+1=", "2"), texts, (1.0, 0.0), "peer", model="m", logprobs=rows)
    assert learner.behaviour(same, ids) == list(rows)
    other = dataclasses.replace(same, model="another/model")
    assert learner.behaviour(other, ids) == [None, None]
    short = dataclasses.replace(same, logprobs=(rows[0], rows[1][:-1]))  # a row one short: that row only
    assert learner.behaviour(short, ids) == [rows[0], None]
    assert learner.behaviour(dataclasses.replace(same, logprobs=None), ids) == [None, None]


def _step_counts(config: TrainConfig, group: Group) -> tuple[int, int, int]:
    model, prompter = _setup()
    stats = Learner(model, config, prompter, model_name="m").step([group])
    return stats.weighted, stats.masked, stats.gated


def test_a_lying_peer_is_masked_and_an_unlikely_completion_gated() -> None:
    """A peer (same model) claims log-prob -60 for every token: with offpolicy_mask = 2 all its tokens are
    masked; with the likelihood gate at -1.0 per token (the untrained model gives about -log(vocab)) both
    completions are dropped, whatever the peer claims."""
    _, prompter = _setup()
    texts = ("<answer>2</answer>", "<answer>3</answer>")
    ids = [prompter.completion_ids(t) for t in texts]
    lying = tuple(tuple(-60.0 for _ in c) for c in ids)
    group = Group(Question(TaskRef("add", 0, 0), "1+1=", "2"), texts, (1.0, 0.0), "peer", model="m", logprobs=lying)
    tokens = sum(len(c) for c in ids)
    assert _step_counts(TrainConfig(offpolicy_mask=2.0, peer_min_logprob=0.0), group) == (tokens, tokens, 0)
    assert _step_counts(TrainConfig(offpolicy_cap=2.0, peer_min_logprob=0.0), group) == (tokens, 0, 0)
    assert _step_counts(TrainConfig(peer_min_logprob=-1.0), group) == (tokens, 0, 2)
    assert _step_counts(TrainConfig(peer_min_logprob=-50.0), group) == (tokens, 0, 0)
    own = dataclasses.replace(group, source="local")  # own completions are never gated
    assert _step_counts(TrainConfig(peer_min_logprob=-1.0), own)[2] == 0
