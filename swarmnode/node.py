"""The round loop: one round is `Node.step()` (draw questions, generate, score, share, select, train,
report), and `run()` repeats it with evaluation and checkpoints in between. Everything a round uses is
built elsewhere (`runtime`, `swarm`, `learner`, `run_dir`, `status`); this file only ties them together.

A round's randomness is derived from (seed, round) alone, and a round changes nothing until its update,
so a run resumed from a checkpoint continues exactly as if it had never stopped (on CPU, same threads).
Except in a swarm: there the rounds after the checkpoint may have been shared before the node stopped, and
the same completions again would be refused by every peer as duplicates (and the node would stay unheard
for as many rounds), so a resumed swarm node samples afresh (`replay_salt`). A swarm run is not
reproducible anyway: what peers send depends on timing.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from swarmnode import __version__, checkpoint, runtime
from swarmnode.config import NodeConfig
from swarmnode.drift import GONE, Drift
from swarmnode.errors import UserError
from swarmnode.evaluation import evaluate_row
from swarmnode.experience import Experience
from swarmnode.groups import Group
from swarmnode.identity import Identity
from swarmnode.learner import Learner
from swarmnode.policy import SamplingParams
from swarmnode.run_dir import EvalRow, RoundRow, RunDir, SwarmCounters, round_line
from swarmnode.status import NodeStatus, StatusServer, serve

if TYPE_CHECKING:  # a silo node never loads the swarm stack
    from swarmnode.swarm.membership import Swarm
    from swarmnode.swarm.transports.base import Transport


ALONE_ROUNDS = 5
"""Rounds in a row with nothing from any peer before a swarm node says it is training alone."""
ALONE_REPEAT = 50
"""... and how often it says it again while that lasts."""
HEARD_S = 120.0
"""A peer whose announcement or batch the node read this recently counts as heard (its groups may all be
refused, or the node may take none: swarm.external_groups = 0)."""


class Node:
    def __init__(
        self,
        config: NodeConfig,
        say: Callable[[str], None] = print,
        transport: Transport | None = None,
        identity: Identity | None = None,
    ) -> None:
        self.config = config
        self._print = say
        self.stop_requested = False
        self.run_dir = RunDir(config.run_dir)
        self.run_dir.create()
        self.status = NodeStatus(
            {
                "version": __version__,
                "swarm": None if config.silo else config.swarm.name,
                "silo": config.silo,
                "model": config.model.name,
                "tasks": list(config.task.names),
                "run_dir": str(config.run_dir),
                "questions_per_round": config.generation.questions_per_round,
                "external_groups": 0 if config.silo else config.swarm.external_groups,
                "backend": config.generation.backend,
                "peer_id": None,
            }
        )
        resume, warnings = checkpoint.resume_point(config.run_dir, config.checkpoint.resume, config.model.name)
        for line in warnings:
            self.say(f"warning: {line}")
        self.runtime = runtime.build(config, str(resume.path) if resume else None)
        self.say(f"generation backend: {self.runtime.backend_why}")
        self.learner = Learner(
            self.runtime.model, config.train, self.runtime.prompter, config.generation.temperature, config.model.name
        )
        self.round = 0
        self.own_groups: list[Group] = []
        """The latest round's own scored groups (benches read them)."""
        self.drift = Drift()
        """Whether the node's own samples start carrying text it refused in peers' (see `drift`)."""
        self.last_checkpoint_round = self.last_eval_round = -1  # a run stopped at round 0 still saves one
        self.replay_salt = 0
        """Mixed into every round's seed after a resume in a swarm (see the module docstring); 0 otherwise."""
        if resume is not None:
            self._resume(resume)
            if not config.silo:
                self.replay_salt = secrets.randbits(62) + 1
        broken = self.run_dir.truncate_after(self.round)  # rounds after the checkpoint are about to run again
        if broken:
            self.say(
                f"warning: {broken} broken line(s) of {self.run_dir.metrics} moved to {self.run_dir.broken_metrics}"
            )
        self.swarm: Swarm | None = None
        if not config.silo:
            from swarmnode.swarm.front import open_swarm

            count = self.runtime.prompter.completion_ids  # peers' completions are bounded in this node's tokens
            self.swarm = open_swarm(
                config,
                self.runtime.tasks,
                transport=transport,
                identity=identity,
                say=self.say,
                count_tokens=lambda text: len(count(text, finished=False)),
            )
            if not config.swarm.peers and config.swarm.transport.type != "memory":
                self.say(
                    f"warning: no --peers given: this node starts swarm {config.swarm.name} on its own and shares with "
                    "nobody until other nodes join it with --peers and one of this node's addresses"
                )
        sw = config.swarm
        self.experience = Experience(
            self.learner,
            own=config.generation.questions_per_round,
            slots=0 if self.swarm is None else sw.external_groups,
            policy=sw.sampler,
            max_share_per_peer=sw.max_share_per_peer,
            newcomer_share=sw.newcomer_share,
            baseline=sw.baseline,
            budget=config.train.budget_groups,
            fewest=config.generation.min_questions,
        )
        self.rounds_alone = 0
        """Rounds in a row in which no peer was heard from (a swarm node: said at ALONE_ROUNDS)."""
        self.server: StatusServer | None = None
        try:  # a mistake found from here on (a status.host it cannot listen on) must not leave the swarm running
            self.run_dir.write_config(config.model_dump_json(indent=2))
            self.status.set_info(peer_id=self.swarm.peer_id if self.swarm else None, backend=self.runtime.backend.name)
            if config.status.enabled:
                self.server, line = serve(self.status, config.status, self.run_dir)
                self.say(line)
        except BaseException:
            self.close()
            raise

    def say(self, line: str) -> None:
        """A line for the user: printed, and in the status API's event stream (the dashboard's log pane)."""
        self._print(line)
        self.status.event("log", line)

    def _resume(self, found: checkpoint.Checkpoint) -> None:
        try:
            checkpoint.restore_optimizer(self.learner.optimizer, found)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise UserError(f"checkpoint {found.path} does not fit this model: {exc}") from exc
        self.round = self.last_checkpoint_round = found.round
        self.learner.updates = int(found.meta.get("policy_version", 0))
        differs = checkpoint.settings_changed(found.meta, self.config)
        if differs:
            self.say(
                f"warning: training settings differ from the checkpoint's ({differs}); continuing with the new ones"
            )
        self.say(f"resumed from {found.path} (round {self.round})")

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Run rounds until the configured count, time or a stop signal; returns the last completed round."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        cfg = self.config
        deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes else float("inf")
        try:
            if self.round == 0 and cfg.eval.every:
                self.evaluate()
            while (
                not self.stop_requested and (not cfg.rounds or self.round < cfg.rounds) and time.monotonic() < deadline
            ):
                if self.status.pause_requested.is_set():  # held from the dashboard or the status API
                    self.status.set_phase("paused")
                    time.sleep(0.2)
                    continue
                if self.step() is None:
                    break
                if cfg.eval.every and self.round % cfg.eval.every == 0:
                    self.evaluate()
                if self.round % cfg.checkpoint.every == 0:
                    self.save_checkpoint()
            if cfg.eval.every and self.round > self.last_eval_round:
                self.evaluate()
            if self.round > self.last_checkpoint_round:
                self.save_checkpoint()
            self.say(f"stopped after round {self.round}; run the same command to resume")
            self.status.set_phase("stopped")
            return self.round
        finally:
            self.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        """Stop serving the status API and leave the swarm (the transport too, if the node opened it)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.swarm is not None:
            self.swarm.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        self.say(f"{signal.Signals(signum).name}: saving a checkpoint and stopping (again to quit at once)")

    def step(self) -> RoundRow | None:
        """Run the next round and report it (metrics.jsonl, the status API, one printed line). Returns its
        row, or None when a stop was requested before its update (then nothing changed)."""
        cfg, rt, round_ = self.config, self.runtime, self.round + 1
        gen = cfg.generation
        start = time.perf_counter()
        self.status.set_phase("generating")
        asked = self.experience.questions_next()  # I, or fewer where peers filled the last round's budget
        questions = rt.tasks.draw(cfg.seed, (round_ - 1) * gen.questions_per_round, asked)
        seed = runtime.round_seed(cfg.seed, round_, self.replay_salt)
        params = SamplingParams(
            gen.completions_per_question, gen.max_new_tokens, gen.temperature, gen.top_p, gen.top_k, seed
        )
        io_before = self.swarm.io_seconds() if self.swarm is not None else 0.0
        local = self.own_groups = rt.rollouts(questions, params)
        generate_s = time.perf_counter() - start
        if self.stop_requested:
            return None
        self.status.set_phase("sharing")
        external: list[Group] = []
        if self.swarm is not None:
            external = self.swarm.share(round_, self.learner.updates, local)
            for line in self.swarm.trouble():  # warnings (a --quiet node still says them), but for a join
                level = "" if line.startswith("joined ") else "warning: "
                self.say(f"round {round_:5d} | {level}{line}")
        share_s = time.perf_counter() - start - generate_s
        self.status.set_phase("training")
        trained = self.experience.train(local, external, seed)
        stats = trained.stats
        if self.swarm is not None and stats.gated_by_source:
            self.swarm.note_gated(stats.gated_by_source)
        stray = rt.tasks.stray
        refused = (stray(c) for g in external for c in g.completions)
        drift = self.drift.note_round(round_, refused, stats.gated_texts, (c for g in local for c in g.completions))
        if drift:  # a rise is a warning (a poisoning symptom), its end is news
            self.say(f"round {round_:5d} | {'' if drift == GONE else 'warning: '}{drift}")
        rt.backend.sync_weights()
        self.round = round_
        rewards = [r for g in local for r in g.rewards]
        tokens = sum(len(ids) for g in local for ids in g.token_ids or ())
        used = trained.used
        view = self.swarm.view() if self.swarm is not None else None  # one copy of the swarm's state a round
        peers = view.peers if view is not None else None
        counters: SwarmCounters = view.counters() if view is not None else {}
        row: RoundRow = {
            **counters,
            "round": round_,
            "time": time.time(),
            "mean_reward": sum(rewards) / len(rewards),
            "accuracy": sum(r >= 1.0 for r in rewards) / len(rewards),
            "questions": asked,
            "groups": stats.groups,
            "completions": stats.completions,
            "generated_tokens": tokens,
            "tokens_per_s": tokens / generate_s if generate_s > 0 else 0.0,
            "generate_s": generate_s,
            "share_s": share_s,
            "share_io_s": (self.swarm.io_seconds() - io_before) if self.swarm is not None else 0.0,
            "clock_offset_s": view.offset_s() if view is not None else None,
            "train_s": stats.seconds,
            "round_s": time.perf_counter() - start,
            "stepped": stats.stepped,
            "loss": stats.loss,
            "grad_norm": stats.grad_norm,
            "clip_fraction": stats.clip_fraction,
            "external_available": len(external),
            "external_groups": sum(used.values()),
            "external_slots": trained.slots,
            "external_by_peer": dict(used),
            "external_skipped": dict(sorted(trained.skipped.items())),
            "offpolicy": {
                "weighted_tokens": stats.weighted,
                "masked_tokens": stats.masked,
                "gated_completions": stats.gated,
            },
            "kl": stats.kl,
            "policy_version": self.learner.updates,
            "drift": self.drift.row(),
        }
        self.run_dir.append(row)
        self.status.round_done(row, peers)
        self.say(round_line(row, asked, self.swarm is not None))
        if peers is not None:
            heard = external or any(p["last_seen_s"] <= HEARD_S for p in peers)
            self._note_alone(round_, bool(heard))
        return row

    def _note_alone(self, round_: int, heard: bool) -> None:
        """Say when no peer has been heard from for ALONE_ROUNDS rounds (and every ALONE_REPEAT after): a
        volunteer who forgot --peers, or whose peers are gone, must not believe the node is contributing."""
        self.rounds_alone = 0 if heard else self.rounds_alone + 1
        n = self.rounds_alone
        if n < ALONE_ROUNDS or (n - ALONE_ROUNDS) % ALONE_REPEAT:
            return
        sw = self.config.swarm
        why = (
            f"check them: swarmnode doctor --swarm {sw.name} --peers {' '.join(sw.peers)}"
            if sw.peers
            else "no --peers was given: other nodes must join through this one"
        )
        self.say(f"round {round_:5d} | warning: nothing from any peer in {n} rounds: training alone ({why})")

    # ------------------------------------------------------------------ evaluation and checkpoints

    def evaluate(self) -> EvalRow:
        """Greedy accuracy on the held-out questions, reported like a round."""
        cfg, rt = self.config, self.runtime
        self.status.set_phase("evaluating")
        row = evaluate_row(rt.backend, rt.prompter, rt.tasks, cfg.eval, cfg.generation.max_new_tokens, self.round)
        self.last_eval_round = self.round
        self.run_dir.append(row)
        self.status.eval_done(row)
        self.say(
            f"round {self.round:5d} | held-out greedy accuracy {row['eval_greedy_accuracy']:6.1%} "
            f"({row['eval_questions']} questions, {row['eval_s']:.1f}s)"
            + (
                " | " + " ".join(f"{k} {v:.0%}" for k, v in row["eval_by_task"].items())
                if len(row["eval_by_task"]) > 1
                else ""
            )
        )
        return row

    def save_checkpoint(self) -> None:
        cfg = self.config
        self.status.set_phase("checkpointing")
        meta = {
            "model_name": cfg.model.name,
            "policy_version": self.learner.updates,
            "training_settings": cfg.training_settings(),
            "seed": cfg.seed,
        }
        rt = self.runtime
        saved = checkpoint.save(
            cfg.run_dir, self.round, rt.model, rt.tokenizer, self.learner.optimizer, meta, keep=cfg.checkpoint.keep
        )
        self.last_checkpoint_round = self.round
        if saved.set_aside is not None:
            self.say(f"warning: {checkpoint.moved_line(saved.path, saved.set_aside)}")
        self.say(f"round {self.round:5d} | checkpoint {saved.path}")
