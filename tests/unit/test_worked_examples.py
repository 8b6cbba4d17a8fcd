"""Worked examples and a named model's own settings: SmolLM2-135M never writes `<answer>` when only
told to (0 of 80 samples), so a chat model is shown `model.examples` earlier turns, questions of the train split
answered in the answer format; `--model smollm2-135m` brings the settings it learns with, under the user's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmnode.config import NodeConfig, load_config, parse_override
from swarmnode.policy.base import Prompter
from swarmnode.tasks.base import AnswerFormat, TaskSet, stray_text, worked_reply
from swarmnode.tasks.catalog import make_task
from tests.unit.test_stop_tokens import chat_tokenizer

CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)


@pytest.mark.parametrize("answer_format", ["end", "exact", "anywhere"])
def test_a_worked_reply_scores_one_under_the_sets_answer_format(answer_format: AnswerFormat) -> None:
    tasks = TaskSet([make_task("mul", {"digits": 1}), make_task("count", {"level": 1})], answer_format)
    for asked, reply in tasks.examples(4):
        question = next(q for q in tasks.draw(4_242_424_242, 0, 4) if q.text == asked)
        assert reply == worked_reply(question, answer_format) and reply.endswith(f"<answer>{question.answer}</answer>")
        assert reply.startswith(asked[:-1]) == (answer_format != "exact")  # the equation restated where allowed
        assert tasks.score(question, reply) == 1.0 and not stray_text(reply, answer_format)


def test_examples_come_from_the_train_split_and_are_the_same_for_every_node() -> None:
    tasks = TaskSet([make_task("add", {"digits": 2})])
    shown = tasks.examples(8)
    assert shown == TaskSet([make_task("add", {"digits": 2})]).examples(8)
    held_out = {q.text for q in tasks.eval_questions(12345, 2000)}
    assert not held_out & {asked for asked, _ in shown}
    assert tasks.examples(0) == []


def test_a_chat_prompt_carries_the_examples_as_earlier_turns_and_a_plain_prompt_does_not() -> None:
    tokenizer = chat_tokenizer()
    tokenizer.chat_template = CHAT
    examples = [("3*4=", "3*4 = 12. <answer>12</answer>")]
    with_them = Prompter(tokenizer, "auto", "Be brief.", examples=examples)
    text = tokenizer.decode(with_them.prompt_ids("7*8="))
    assert text.index("Be brief.") < text.index("user\n3*4=") < text.index("assistant\n3*4 = 12. <answer>12</answer>")
    assert text.index("<answer>12</answer>") < text.index("user\n7*8=") and text.endswith("<|im_start|>assistant")
    assert "3*4" not in tokenizer.decode(Prompter(tokenizer, "auto", "Be brief.").prompt_ids("7*8="))
    plain = Prompter(tokenizer, "off", "", examples=examples)
    assert tokenizer.decode(plain.prompt_ids("7*8=")) == "7*8="


def test_smollm2_brings_its_own_settings_and_the_users_win() -> None:
    named = load_config(None, [parse_override("model.name=smollm2-135m")])
    assert named.model.examples == 1 and named.generation.max_new_tokens == 32
    assert named.task.names == ["mul", "count"]
    flags = ("model.name=smollm2-135m", "train.lr=3e-6", "task.names=['add']")
    mine = load_config(None, [parse_override(s) for s in flags])
    assert mine.train.lr == 3e-6 and mine.generation.max_new_tokens == 32
    assert mine.task.names == ["add"] and mine.task.params == {"add": {"digits": 2}}  # the user's task, whole
    assert load_config(None, []).model.examples == 0  # the embedded default is untouched


def test_task_fields_of_the_users_merge_with_the_models_tasks() -> None:
    def task(*flags: str) -> tuple[list[str], dict[str, object], str]:
        config = load_config(None, [parse_override(s) for s in ("model.name=smollm2-135m", *flags)])
        return config.task.names, config.task.params, config.task.answer_format

    models = {"mul": {"digits": 1}, "count": {"level": 1}}
    assert task("task.answer_format=exact") == (["mul", "count"], models, "exact")
    assert task("task.params.mul.digits=2") == (["mul", "count"], {**models, "mul": {"digits": 2}}, "end")
    assert task("task.names=['mul']") == (["mul"], {"mul": {"digits": 1}}, "end")  # the model's level for mul
    assert task("task.names=['add']")[:2] == (["add"], {"add": {"digits": 2}})


def test_a_config_file_beats_the_models_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\nname = "smollm2-135m"\n[generation]\nmax_new_tokens = 48\n')
    config = load_config(path)
    assert config.generation.max_new_tokens == 48 and config.generation.questions_per_round == 8


def test_checkpoints_written_before_examples_existed_keep_their_digest() -> None:
    before = NodeConfig().model_dump(mode="json")
    del before["model"]["examples"]
    assert NodeConfig.model_validate(before).training_digest() == NodeConfig().training_digest()
    assert NodeConfig().training_digest() != load_config(None, [parse_override("model.examples=1")]).training_digest()
