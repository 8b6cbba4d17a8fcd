"""Sharing rollouts with untrusted peers: validation of what arrives and the book of peers it came from.
(In-memory transport built; the hivemind backend and the node wiring are not built yet.)"""
