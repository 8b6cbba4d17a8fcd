"""Tasks: deterministic questions rebuilt from references, held-out splits, verifiers, bad names."""

from __future__ import annotations

import pytest

from protocol import TaskRef
from swarmnode.errors import UserError
from swarmnode.tasks import TaskSet, builtin, extract_answer, make_task
from swarmnode.tasks.base import TaskError
from swarmnode.tasks.builtin import AddTask, is_held_out


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("<answer>52</answer>", "52"),
        ("think <answer>1</answer> no wait <answer>2</answer>", "2"),
        ("<answer> 52 </answer>", "52"),
        ("52", None),
        ("<answer>52", None),
        ("<answer>5<bos>2</answer>", "5<bos>2"),
        ("<answer>\n7\n</answer>", "7"),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_add_questions_are_rebuilt_exactly_from_their_reference() -> None:
    task = AddTask(2)
    refs = task.refs(seed=5, start=100, count=20, split="train")
    first = [task.question(r) for r in refs]
    again = [AddTask(2).question(r) for r in refs]
    assert first == again
    q = first[0]
    a, b = int(q.text[:2]), int(q.text[3:5])
    assert q.text == f"{a:02d}+{b:02d}=" and q.answer == str(a + b)
    assert [task.question(r).text for r in task.refs(6, 100, 20, "train")] != [x.text for x in first]


def test_train_and_eval_splits_are_disjoint() -> None:
    task = AddTask(2)
    for split, held in (("train", False), ("eval", True)):
        for ref in task.refs(seed=1, start=0, count=300, split=split):
            q = task.question(ref)
            a, b = int(q.text[:2]), int(q.text[3:5])
            assert is_held_out(a, b, 2) is held


def test_add_verifier() -> None:
    task = AddTask(2)
    q = task.question(task.refs(0, 0, 1, "train")[0])
    assert task.score(q, f"<answer>{q.answer}</answer>") == 1.0
    assert task.score(q, f"<answer>{int(q.answer) + 1}</answer>") == 0.0
    assert task.score(q, q.answer) == 0.0  # no answer tags
    assert task.score(q, f"<answer>{q.answer[0]}<bos>{q.answer[1:]}</answer>") == 0.0
    assert task.score(q, f"<answer>0{q.answer}</answer>") == 0.0


def test_add_rejects_foreign_references() -> None:
    task = AddTask(2)
    with pytest.raises(TaskError):
        task.question(TaskRef("add", 0, 0, (("digits", 3),)))
    with pytest.raises(TaskError):
        task.question(TaskRef("add", 0, 0, (("digits", 2), ("extra", 1))))
    with pytest.raises(TaskError):
        task.question(TaskRef("add", 0, 0, (("digits", 2), ("split", "secret"))))


def test_make_task_errors_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown task 'nope'"):
        make_task("nope")
    with pytest.raises(UserError, match="bad parameters"):
        make_task("add", {"digits": 9})
    with pytest.raises(UserError, match="bad parameters"):
        make_task("add", {"digits": "two"})
    with pytest.raises(UserError, match="bad parameters"):
        make_task("add", {"colour": "red"})


def test_task_set_draw_is_deterministic_and_round_robin() -> None:
    tasks = TaskSet([make_task("add", {"digits": 2}), make_task("basic_arithmetic")])
    drawn = tasks.draw(seed=3, start=10, count=6)
    assert [q.ref.task for q in drawn] == ["add", "basic_arithmetic"] * 3
    assert drawn == tasks.draw(seed=3, start=10, count=6)
    # overlapping windows agree on shared positions
    assert tasks.draw(seed=3, start=12, count=2) == drawn[2:4]
    for q in drawn:
        assert tasks.rebuild(q.ref) == q


def test_rebuild_rejects_unknown_tasks() -> None:
    tasks = TaskSet([make_task("add")])
    with pytest.raises(TaskError):
        tasks.rebuild(TaskRef("basic_arithmetic", 0, 0))


def test_reasoning_gym_task_rebuild_and_verifier() -> None:
    task = make_task("basic_arithmetic", {"min_terms": 2, "max_terms": 3})
    ref = task.refs(seed=11, start=7, count=1, split="train")[0]
    q = task.question(ref)
    assert q == make_task("basic_arithmetic", {"min_terms": 2, "max_terms": 3}).question(ref)
    assert task.score(q, f"<answer>{q.answer}</answer>") == 1.0
    assert task.score(q, "<answer>not a number</answer>") == 0.0
    assert task.score(q, "") == 0.0
    eval_ref = task.refs(seed=11, start=7, count=1, split="eval")[0]
    assert eval_ref.seed != ref.seed
    with pytest.raises(TaskError):  # same dataset, other parameters: the question would differ
        task.question(TaskRef("basic_arithmetic", 11, 7, (("max_terms", 5), ("min_terms", 2))))


def test_reasoning_gym_bad_parameters() -> None:
    with pytest.raises(UserError, match="basic_arithmetic"):
        make_task("basic_arithmetic", {"no_such_field": 1})


def test_a_reference_says_whether_it_is_from_the_eval_split() -> None:
    tasks = TaskSet([make_task("add"), make_task("basic_arithmetic")])
    train, held = tasks.draw(seed=2, start=0, count=2), tasks.eval_questions(seed=2, count=2)
    assert held == tasks.draw(seed=2, start=0, count=2, split="eval")
    assert [tasks.in_eval_split(q.ref) for q in train + held] == [False, False, True, False]  # gym cannot say
    assert not tasks.in_eval_split(TaskRef("sub", 0, 0, (("split", "eval"),)))  # not one of this set's tasks


FAMILY_ANSWERS = [  # (family, level, question text, its answer), computed by hand
    ("sub", 2, "83-45=", "38"),
    ("mul", 2, "7*45=", "315"),
    ("rev", 2, "rev kqz=", "zqk"),
    ("sort", 2, "sort 5129=", "1259"),
    ("count", 2, "count a:abcaaa=", "4"),
    ("max", 2, "max 3,91,27=", "91"),
]


@pytest.mark.parametrize(("name", "level", "text", "answer"), FAMILY_ANSWERS)
def test_each_builtin_family_answers_exactly(name: str, level: int, text: str, answer: str) -> None:
    """Every drawn question of a family is rebuilt from its reference, is answered correctly by an independent
    solver, and is scored 1 only for that exact answer."""
    task = make_task(name, {builtin.FAMILIES[name].param: level})
    solve = {
        "sub": lambda q: str(int(q[:-1].split("-")[0]) - int(q[:-1].split("-")[1])),
        "mul": lambda q: str(int(q[:-1].split("*")[0]) * int(q[:-1].split("*")[1])),
        "rev": lambda q: q[4:-1][::-1],
        "sort": lambda q: "".join(sorted(q[5:-1])),
        "count": lambda q: str(q[8:-1].count(q[6])),
        "max": lambda q: str(max(int(n) for n in q[4:-1].split(","))),
    }[name]
    assert solve(text) == answer  # the solver agrees with the hand-computed example
    assert task.question(task.refs(seed=3, start=0, count=1, split="train")[0]).ref.params[0] == (task.param, level)
    for split in ("train", "eval"):
        for ref in task.refs(seed=3, start=0, count=50, split=split):
            q = task.question(ref)
            assert q == task.question(ref) and q.answer == solve(q.text), q
            assert task.score(q, f"<answer>{q.answer}</answer>") == 1.0
            assert task.score(q, f"<answer>{q.answer}0</answer>") == 0.0
            assert task.in_eval_split(ref) == (split == "eval")


@pytest.mark.parametrize("name", sorted(builtin.TASKS))
def test_each_builtin_family_holds_questions_out_and_checks_its_level(name: str) -> None:
    task = builtin.TASKS[name]({})
    train = {task.question(r).text for r in task.refs(seed=1, start=0, count=400, split="train")}
    held = {task.question(r).text for r in task.refs(seed=1, start=0, count=100, split="eval")}
    assert train and held and not train & held
    top = task.levels.stop - 1
    with pytest.raises(UserError, match=f"{task.param} must be an integer from 1 to {top}"):
        make_task(name, {task.param: top + 1})
    other = builtin.TASKS[name]({task.param: 1})
    with pytest.raises(TaskError, match=f"{task.param}=2, this node uses 1"):
        other.question(task.refs(seed=1, start=0, count=1, split="train")[0])


def test_task_weights_shape_the_training_stream_only() -> None:
    """Each task comes up as often as its weight, no question repeats within a task's stream, weights of 1 are
    plain round-robin (the stream every node drew before weights existed), and held-out questions ignore them."""

    families = [make_task("add", {"digits": 2}), make_task("max"), make_task("count")]
    plain = TaskSet(families)
    assert [(q.ref.task, q.ref.index) for q in plain.draw(3, 0, 6)] == [
        ("add", 0),
        ("max", 0),
        ("count", 0),
        ("add", 1),
        ("max", 1),
        ("count", 1),
    ]
    assert TaskSet(families, weights={"add": 1}).draw(3, 0, 30) == plain.draw(3, 0, 30)
    weighted = TaskSet(families, weights={"add": 4})
    drawn = weighted.draw(3, 0, 600)
    counts = {name: sum(q.ref.task == name for q in drawn) for name in ("add", "max", "count")}
    assert counts == {"add": 400, "max": 100, "count": 100}
    adds = [q.ref.index for q in drawn if q.ref.task == "add"]
    assert adds == list(range(400))  # every index of the add stream once, in order
    assert weighted.draw(3, 0, 30, split="eval") == plain.draw(3, 0, 30, split="eval")
    with pytest.raises(UserError, match="mul"):
        TaskSet(families, weights={"mul": 2})
