"""Generation backends behind one small interface, and the prompt/tokenisation rules they share."""

from swarmnode.policy.base import Completion, PolicyBackend, Prompter, SamplingParams

__all__ = ["Completion", "PolicyBackend", "Prompter", "SamplingParams"]
