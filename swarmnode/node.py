"""The round loop: draw questions, generate, score, train, report, evaluate, checkpoint. It ties the
modules together and holds no learning logic of its own.

A round's randomness is derived from (seed, round) alone, and a round changes nothing until its update,
so a run resumed from a checkpoint continues exactly as if it had never stopped (on CPU, same threads).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch
from transformers.utils import logging as transformers_logging

import protocol
from swarmnode import __version__, checkpoint
from swarmnode.config import NodeConfig
from swarmnode.errors import UserError
from swarmnode.evaluation import evaluate
from swarmnode.experience import ScoredGroup, select_groups
from swarmnode.identity import Identity, load_or_create
from swarmnode.learner import Learner, StepStats, TrainGroup
from swarmnode.models import load_model, resolve_model_source
from swarmnode.policy import Prompter, SamplingParams
from swarmnode.policy.select import make_backend
from swarmnode.status import NodeStatus, StatusServer, write_url
from swarmnode.swarm import open_transport
from swarmnode.swarm.exchange import OwnGroup, RolloutExchange
from swarmnode.swarm.peers import PeerBook
from swarmnode.swarm.transport import Transport
from swarmnode.swarm.validate import BatchValidator, FreshnessPolicy
from swarmnode.tasks import Question, TaskSet, make_task


def round_seed(seed: int, round_: int) -> int:
    return int.from_bytes(hashlib.sha256(f"swarmnode:{seed}:{round_}".encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class RoundResult:
    round: int
    mean_reward: float
    accuracy: float
    generated_tokens: int
    generate_s: float
    share_s: float
    train_s: float
    round_s: float
    step: StepStats
    external_available: int = 0
    external_by_peer: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "time": time.time(),
            "mean_reward": self.mean_reward,
            "accuracy": self.accuracy,
            "groups": self.step.groups,
            "completions": self.step.completions,
            "generated_tokens": self.generated_tokens,
            "tokens_per_s": self.generated_tokens / self.generate_s if self.generate_s > 0 else 0.0,
            "generate_s": self.generate_s,
            "share_s": self.share_s,
            "train_s": self.train_s,
            "round_s": self.round_s,
            "stepped": self.step.stepped,
            "loss": self.step.loss,
            "grad_norm": self.step.grad_norm,
            "clip_fraction": self.step.clip_fraction,
            "external_available": self.external_available,
            "external_groups": sum(self.external_by_peer.values()),
            "external_by_peer": self.external_by_peer,
            "kl": self.step.kl,
        }


class Node:
    def __init__(
        self,
        config: NodeConfig,
        say: Callable[[str], None] = print,
        transport: Transport | None = None,
        identity: Identity | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.identity = identity
        self.exchange: RolloutExchange | None = None
        self._print = say
        self.stop_requested = False
        self.round = 0
        self.last_checkpoint_round = -1
        self.last_eval_round = -1
        self.metrics_path = config.run_dir / "metrics.jsonl"
        self._setup()

    def say(self, line: str) -> None:
        """A line for the user: printed, and in the status API's event stream (the dashboard's log pane)."""
        self._print(line)
        status = getattr(self, "status", None)
        if status is not None:
            status.event("log", line)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg = self.config
        self.server: StatusServer | None = None
        self.status = NodeStatus(
            {
                "version": __version__,
                "swarm": None if cfg.silo else cfg.swarm.name,
                "silo": cfg.silo,
                "model": cfg.model.name,
                "tasks": list(cfg.task.names),
                "run_dir": str(cfg.run_dir),
                "questions_per_round": cfg.generation.questions_per_round,
                "external_groups": 0 if cfg.silo else cfg.swarm.external_groups,
                "backend": cfg.generation.backend,
                "peer_id": None,
            }
        )
        torch.set_num_threads(cfg.threads)
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        self._owns_transport = False
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        resume_from = None
        if cfg.checkpoint.resume:
            resume_from, warnings = checkpoint.latest(cfg.run_dir)
            for line in warnings:
                self.say(f"warning: {line}")
        elif checkpoint.candidate_folders(cfg.run_dir):
            raise UserError(f"{cfg.run_dir} already holds checkpoints and resume is off; use another --run-dir")
        if resume_from is not None and resume_from.meta.get("model_name") != cfg.model.name:
            raise UserError(
                f"{cfg.run_dir} holds a run of model {resume_from.meta.get('model_name')!r}, not {cfg.model.name!r}; "
                "use another --run-dir"
            )
        source = str(resume_from.path) if resume_from else resolve_model_source(cfg.model.name)
        self.model, self.tokenizer = load_model(source, cfg.model.dtype)
        try:
            self.prompter = Prompter(self.tokenizer, cfg.model.chat_template, cfg.model.system_prompt)
        except ValueError as exc:
            raise UserError(f"model {cfg.model.name!r}: {exc}") from exc
        self.tasks = TaskSet([make_task(name, cfg.task.params.get(name)) for name in cfg.task.names])
        self.backend, why = make_backend(
            cfg.generation.backend, self.model, source, self.prompter, cfg.generation, cfg.model.dtype, cfg.seed
        )
        self.say(f"generation backend: {why}")
        self.learner = Learner(self.model, cfg.train, self.prompter.pad_id, cfg.generation.temperature)
        if resume_from is not None:
            try:
                checkpoint.restore_optimizer(self.learner.optimizer, resume_from)
            except (ValueError, KeyError, RuntimeError, OSError) as exc:
                raise UserError(f"checkpoint {resume_from.path} does not fit this model: {exc}") from exc
            self.round = self.last_checkpoint_round = resume_from.round
            self.learner.updates = int(resume_from.meta.get("policy_version", 0))
            if resume_from.meta.get("config_digest") != cfg.training_digest():
                self.say("warning: the training settings differ from the checkpoint's; continuing with the new ones")
            self._truncate_metrics(self.round)
            self.say(f"resumed from {resume_from.path} (round {self.round})")
        else:
            self._truncate_metrics(0)  # a run that died before its first checkpoint starts over, metrics too
        if not cfg.silo:
            if self.transport is None:
                dht = open_transport(cfg)
                self.transport, self._owns_transport = dht, True
                addresses = dht.visible_maddrs()
                if addresses:
                    self.say("this node's addresses (others join with --peers ADDR): " + " ".join(addresses))
                else:
                    self.say("memory transport: no network; only nodes of this process share rollouts")
            self._setup_swarm(self.transport)
        (cfg.run_dir / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
        self.status.set_info(
            peer_id=self.exchange.identity.peer_id if self.exchange else None,
            backend=self.backend.name,
        )
        if cfg.status.enabled:
            self.server = StatusServer(self.status, cfg.status.host, cfg.status.port, cfg.status.token)
            write_url(cfg.run_dir, self.server.url)
            taken = f" (port {cfg.status.port} was taken)" if self.server.fallback else ""
            self.say(f"status API: {self.server.url}/status{taken}; dashboard: swarmnode tui --url {self.server.url}")

    def _setup_swarm(self, transport: Transport) -> None:
        cfg = self.config
        sw = cfg.swarm
        identity = self.identity or load_or_create(sw.key_path)
        limits = protocol.Limits()
        policy = FreshnessPolicy(
            max_age_s=sw.max_age_s,
            max_future_s=sw.max_clock_skew_s,
            batches_per_peer_per_round=sw.batches_per_peer_per_round,
        )
        self.exchange = RolloutExchange(
            transport,
            identity,
            sw.name,
            BatchValidator(sw.name, self.tasks, limits, policy, held_out=self._held_out()),
            PeerBook(ban_after=sw.ban_after, ban_s=sw.ban_s),
            limits,
            model=cfg.model.name,
            window_s=sw.window_s,
            max_batches=sw.max_batches_per_round,
            round_timeout_s=sw.round_timeout_s,
        )
        self.say(f"swarm {sw.name}: peer id {identity.peer_id}")

    def _held_out(self) -> Callable[[Question], bool]:
        """This node's evaluation questions (by text), and anything a task marks as its eval split."""
        cfg = self.config
        texts = {q.text for q in self.tasks.draw(cfg.eval.seed, 0, cfg.eval.questions, split="eval")}
        return lambda q: q.text in texts or dict(q.ref.params).get("split") == "eval"

    def _external_groups(self, round_: int, local: list[ScoredGroup]) -> list[ScoredGroup]:
        """Share this round's groups, then collect peers' as text, re-tokenised for this node's model."""
        sw = self.config.swarm
        per_peer = max(1, math.floor(sw.max_share_per_peer * sw.external_groups))
        if self.exchange is None:
            return []
        self.exchange.start_round()
        # peers unreachable: publish counts it as an I/O error; still read what is there, retry next round
        self.exchange.publish(
            round_,
            self.learner.updates,
            [OwnGroup(g.question, tuple(g.texts), tuple(g.rewards)) for g in local],
        )
        collected = self.exchange.collect(round_, want_groups=sw.external_groups, per_peer_groups=per_peer)
        for line in self.exchange.trouble():
            self.say(f"round {round_:5d} | {line}")
        return [
            ScoredGroup(
                g.question,
                self.prompter.prompt_ids(g.question.text),
                tuple(self.prompter.completion_ids(c) for c in g.completions),
                g.rewards,
                g.author,
                g.completions,
            )
            for g in collected
        ]

    def _truncate_metrics(self, last_round: int) -> None:
        """Drop metrics of rounds after the checkpoint: they are about to be run again."""
        if not self.metrics_path.exists():
            return
        kept = [
            line
            for line in self.metrics_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("round", 0) <= last_round
        ]
        self.metrics_path.write_text("".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Run rounds until the configured count or a stop signal; returns the last completed round."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            cfg = self.config
            deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes else float("inf")
            if self.round == 0 and cfg.eval.every:
                self._evaluate()
            while (
                not self.stop_requested and (cfg.rounds == 0 or self.round < cfg.rounds) and time.monotonic() < deadline
            ):
                if self.status.pause_requested.is_set():  # held from the dashboard or the status API
                    self.status.set_phase("paused")
                    time.sleep(0.2)
                    continue
                result = self.run_round(self.round + 1)
                if result is None:
                    break
                self.round = result.round
                self._report(result)
                if cfg.eval.every and self.round % cfg.eval.every == 0:
                    self._evaluate()
                if self.round % cfg.checkpoint.every == 0:
                    self._checkpoint()
            if cfg.eval.every and self.round > self.last_eval_round:
                self._evaluate()
            if self.round > self.last_checkpoint_round:
                self._checkpoint()
            self.say(f"stopped after round {self.round}; run the same command to resume")
            self.status.set_phase("stopped")
            return self.round
        finally:
            if self.server is not None:
                self.server.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._owns_transport:
                self.transport.close()  # type: ignore[union-attr]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        self.say(f"{signal.Signals(signum).name}: saving a checkpoint and stopping (again to quit at once)")

    def run_round(self, round_: int) -> RoundResult | None:
        """One round. Returns None when a stop was requested before its update (nothing changed)."""
        cfg = self.config
        gen = cfg.generation
        start = time.perf_counter()
        self.status.set_phase("generating")
        questions = self.tasks.draw(cfg.seed, (round_ - 1) * gen.questions_per_round, gen.questions_per_round)
        prompts = [self.prompter.prompt_ids(q.text) for q in questions]
        params = SamplingParams(
            n=gen.completions_per_question,
            max_new_tokens=gen.max_new_tokens,
            temperature=gen.temperature,
            top_p=gen.top_p,
            top_k=gen.top_k,
            seed=round_seed(cfg.seed, round_),
        )
        outputs = self.backend.generate(prompts, params)
        generate_s = time.perf_counter() - start
        local = [
            ScoredGroup(
                q,
                p,
                tuple(c.token_ids for c in outs),
                tuple(self.tasks.score(q, c.text) for c in outs),
                "local",
                tuple(c.text for c in outs),
            )
            for q, p, outs in zip(questions, prompts, outputs, strict=True)
        ]
        if self.stop_requested:
            return None
        self.status.set_phase("sharing")
        shared_at = time.perf_counter()
        external = self._external_groups(round_, local)
        share_s = time.perf_counter() - shared_at
        self.status.set_phase("training")
        sw = cfg.swarm
        chosen = select_groups(
            local,
            external,
            local_count=gen.questions_per_round,
            external_count=0 if cfg.silo else sw.external_groups,
            rng=random.Random(round_seed(cfg.seed, round_)),
            policy=sw.sampler,
            max_share_per_peer=sw.max_share_per_peer,
        )
        used = Counter(g.source for g in chosen if g.source != "local")
        step = self.learner.step([TrainGroup(g.prompt_ids, g.completion_ids, g.rewards) for g in chosen])
        self.backend.sync_weights()
        rewards = [r for g in local for r in g.rewards]
        return RoundResult(
            round=round_,
            mean_reward=sum(rewards) / len(rewards),
            accuracy=sum(r >= 1.0 for r in rewards) / len(rewards),
            generated_tokens=sum(len(c.token_ids) for outs in outputs for c in outs),
            generate_s=generate_s,
            share_s=share_s,
            train_s=step.seconds,
            round_s=time.perf_counter() - start,
            step=step,
            external_available=len(external),
            external_by_peer=dict(used),
        )

    # ------------------------------------------------------------------ reporting, eval, checkpoints

    def _append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def _report(self, result: RoundResult) -> None:
        row = result.metrics()
        row["policy_version"] = self.learner.updates
        peers = self.exchange.book.snapshot() if self.exchange is not None else None
        if peers is not None:
            row.update(self.swarm_metrics(peers))
        self._append_metrics(row)
        self.status.round_done(row, peers)
        self.say(
            f"round {result.round:5d} | reward {result.mean_reward:.3f} | acc {result.accuracy:6.1%} | "
            f"groups {result.step.groups:2d}/{self.config.generation.questions_per_round} | "
            f"{row['tokens_per_s']:7.0f} tok/s | gen {result.generate_s:.2f}s train {result.train_s:.2f}s"
            + ("" if self.exchange is None else f" | external {row['external_groups']}/{result.external_available}")
        )

    def swarm_metrics(self, peers: list[dict[str, Any]]) -> dict[str, Any]:
        """Cumulative swarm counters: rejections by reason (of offers, of batches and of DHT records),
        peers known (`peers`: the peer book's snapshot) and ignored, misreported rewards, failed fetches
        and I/O errors."""
        assert self.exchange is not None and self.transport is not None
        rejected = self.exchange.rejections()
        rejected.update(self.transport.rejections())
        return {
            "rejected": dict(sorted(rejected.items())),
            "peers": len(peers),
            "banned_peers": sum(1 for p in peers if p["banned"]),
            "misreported_rewards": self.exchange.validator.misreported,
            "fetch_misses": self.exchange.misses,
            "io_errors": self.exchange.io_errors,
        }

    def _evaluate(self) -> None:
        cfg = self.config
        self.status.set_phase("evaluating")
        start = time.perf_counter()
        result = evaluate(
            self.backend,
            self.prompter,
            self.tasks,
            questions=cfg.eval.questions,
            seed=cfg.eval.seed,
            max_new_tokens=cfg.generation.max_new_tokens,
        )
        self.last_eval_round = self.round
        row = {
            "round": self.round,
            "time": time.time(),
            "eval_greedy_accuracy": result.greedy_accuracy,
            "eval_mean_reward": result.mean_reward,
            "eval_questions": result.questions,
            "eval_s": time.perf_counter() - start,
        }
        self._append_metrics(row)
        self.status.eval_done(row)
        self.say(
            f"round {self.round:5d} | held-out greedy accuracy {result.greedy_accuracy:6.1%} "
            f"({result.questions} questions, {time.perf_counter() - start:.1f}s)"
        )

    def _checkpoint(self) -> None:
        cfg = self.config
        self.status.set_phase("checkpointing")
        meta = {
            "model_name": cfg.model.name,
            "policy_version": self.learner.updates,
            "config_digest": cfg.training_digest(),
            "seed": cfg.seed,
        }
        saved = checkpoint.save(
            cfg.run_dir,
            self.round,
            self.model,
            self.tokenizer,
            self.learner.optimizer,
            meta,
            keep=cfg.checkpoint.keep,
            write_delay_s=cfg.checkpoint.test_write_delay_s,
        )
        self.last_checkpoint_round = self.round
        self.say(f"round {self.round:5d} | checkpoint {saved.path}")
