"""Bounds on everything a peer can send. Passed explicitly to every decode; never a global."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits a receiver enforces on each message (see SPEC.md, "Limits")."""

    max_envelope_bytes: int = 3 * 1024 * 1024
    """Largest envelope accepted, checked before any decoding (p2pd caps a message at 4 MiB)."""
    max_groups_per_batch: int = 64
    """Question groups in one rollout batch."""
    max_completions_per_group: int = 64
    """Completions (G) in one question group."""
    max_completion_chars: int = 16384
    """Characters in one completion."""
    max_completion_tokens: int = 4096
    """Behaviour log-probs (v2) of one completion: one per token the author sampled."""
    max_question_chars: int = 8192
    """Characters in one question."""
    max_name_chars: int = 128
    """Characters in a swarm, model, task or parameter name."""
    max_params: int = 16
    """Entries in a task reference's parameter map."""
    max_batches_per_announcement: int = 16
    """Batch summaries in one announcement."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive integer, got {value!r}")

    @property
    def max_str_bytes(self) -> int:
        """Largest UTF-8 string the decoder may allocate (4 bytes per character at most)."""
        return 4 * max(self.max_completion_chars, self.max_question_chars, self.max_name_chars)

    @property
    def max_array_len(self) -> int:
        return max(
            self.max_groups_per_batch,
            self.max_completions_per_group,
            self.max_batches_per_announcement,
            self.max_completion_tokens,
        )
