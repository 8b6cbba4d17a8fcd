"""Verifiable tasks: questions that anyone can rebuild from a task reference, and verifiers that score them."""

from swarmnode.tasks.base import Question, Task, TaskSet, extract_answer
from swarmnode.tasks.catalog import make_task

__all__ = ["Question", "Task", "TaskSet", "extract_answer", "make_task"]
