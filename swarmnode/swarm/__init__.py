"""Sharing rollouts with untrusted peers: validation of what arrives and the book of peers it came from.
(The transports — in-memory and hivemind — are not built yet.)"""
