"""A user's multiaddrs checked before any transport starts."""

from __future__ import annotations


def multiaddr_problem(text: str, with_peer_id: bool) -> str:
    """What is wrong with a multiaddr a user gave ('' if nothing): a peer's must name its peer id (`/p2p/...`),
    a listening address must not."""
    from multiaddr import Multiaddr  # hivemind's own parser (a light import)

    try:
        names = [protocol.name for protocol in Multiaddr(text).protocols()]
    except Exception:  # the parser raises several types (ValueError, BinaryParseError, ...) for bad input
        return "is not a multiaddr"
    if not {"ip4", "ip6", "dns", "dns4", "dns6"} & set(names) or not {"tcp", "udp"} & set(names):
        return "names no host and port"
    if with_peer_id and "p2p" not in names:
        return "has no peer id (/p2p/...)"
    if not with_peer_id and "p2p" in names:
        return "must not name a peer id"
    return ""
