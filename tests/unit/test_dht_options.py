"""Listening defaults: loopback, and no NAT port mapping, AutoNAT or relays unless the user opts in."""

from __future__ import annotations

from typing import Any

import pytest

from swarmnode.config import load_config, parse_override
from swarmnode.swarm import open_transport


class FakeNode:
    async def shutdown(self) -> None:
        return None


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
