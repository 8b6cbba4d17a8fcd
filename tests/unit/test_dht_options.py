"""Listening defaults: loopback, and no NAT port mapping, AutoNAT or relays unless the user opts in."""

from __future__ import annotations

from typing import Any

import pytest

from swarmnode.config import load_config, parse_override
from swarmnode.swarm import open_transport


class FakeNode:
    async def shutdown(self) -> None:
        return None


@pytest.fixture(autouse=True)
def _own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a transport sets in the environment (GOMEMLIMIT) is undone after each test."""
    monkeypatch.delenv("GOMEMLIMIT", raising=False)


@pytest.mark.parametrize("opt_in", [False, True])
def test_nat_traversal_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch, opt_in: bool) -> None:
    import hivemind.dht.node

    seen: dict[str, Any] = {}

    async def fake_create(**kwargs: Any) -> FakeNode:
        seen.update(kwargs)
        return FakeNode()

    monkeypatch.setattr(hivemind.dht.node.DHTNode, "create", staticmethod(fake_create))
    for name in ("swarm.nat_traversal", "swarm.transport.nat_traversal"):  # the old name and the section's
        seen.clear()
        overrides = [parse_override(f"{name}={'true' if opt_in else 'false'}")]
        dht = open_transport(load_config(None, overrides))
        dht.close()
        assert seen["host_maddrs"] == ["/ip4/127.0.0.1/tcp/0"]
        for key in ("nat_port_map", "auto_nat", "use_relay", "use_auto_relay"):
            assert seen[key] is opt_in, (name, key)


def test_nat_traversal_is_refused_for_the_libp2p_transport() -> None:
    """Refused when the config is read, before any transport starts; the libp2p section has no such field."""
    from swarmnode.errors import UserError

    for sets in (
        ("silo=false", "swarm.transport=libp2p", "swarm.nat_traversal=true"),
        ("silo=false", "swarm.transport.nat_traversal=true", "swarm.transport=libp2p"),
    ):
        with pytest.raises(UserError, match="nat_traversal"):
            load_config(None, [parse_override(s) for s in sets])


def test_storage_budgets_come_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """swarm.transport.store_mib / author_mib reach the hivemind node's budget and the libp2p host's flags; an
    author budget above the total is refused in one line when the config is read."""
    import hivemind.dht.node

    from swarmnode.errors import UserError
    from swarmnode.swarm.transports import libp2p

    async def fake_create(**kwargs: Any) -> FakeNode:
        return FakeNode()

    monkeypatch.setattr(hivemind.dht.node.DHTNode, "create", staticmethod(fake_create))
    sets = ["swarm.transport.store_mib=64", "swarm.transport.author_mib=4"]
    dht = open_transport(load_config(None, [parse_override(s) for s in sets]))
    dht.close()
    assert (dht.budget.total_bytes, dht.budget.author_bytes) == (64 << 20, 4 << 20)  # type: ignore[attr-defined]
    started: list[list[str]] = []

    def fake_start(self: libp2p.Libp2pTransport, listen: list[str]) -> list[str]:
        started.append([f"--store-bytes={self.store_bytes}", f"--author-bytes={self.author_bytes}"])
        return ["/ip4/127.0.0.1/tcp/1/p2p/x"]

    monkeypatch.setattr(libp2p, "libp2p_available", lambda: True)
    monkeypatch.setattr(libp2p.Libp2pTransport, "_start", fake_start)
    open_transport(load_config(None, [parse_override(s) for s in ["swarm.transport=libp2p", *sets]]))
    assert started == [[f"--store-bytes={64 << 20}", f"--author-bytes={4 << 20}"]]
    with pytest.raises(UserError, match=r"^config: swarm.transport.author_mib \(64\) is above .*store_mib \(8\)$"):
        load_config(None, [parse_override(s) for s in ["swarm.transport.store_mib=8", "swarm.transport.author_mib=64"]])


@pytest.mark.parametrize("users", [None, "1GiB"])
def test_the_p2p_daemon_gets_a_go_memory_limit_unless_the_user_set_one(
    monkeypatch: pytest.MonkeyPatch, users: str | None
) -> None:
    """hivemind starts its p2p daemon with this process's environment: the node sets GOMEMLIMIT there (relaying
    refused 1 MB records otherwise leaves the daemon ~30 MB bigger), and a user's own value wins."""
    import os

    import hivemind.dht.node

    from swarmnode.swarm.transports.hivemind_storage import DAEMON_GOMEMLIMIT

    async def fake_create(**kwargs: Any) -> FakeNode:
        seen.append(os.environ.get("GOMEMLIMIT"))
        return FakeNode()

    seen: list[str | None] = []
    if users is not None:
        monkeypatch.setenv("GOMEMLIMIT", users)
    monkeypatch.setattr(hivemind.dht.node.DHTNode, "create", staticmethod(fake_create))
    open_transport(load_config(None, [])).close()
    assert seen == [users or DAEMON_GOMEMLIMIT] and DAEMON_GOMEMLIMIT == "48MiB"
