"""The transports a node shares through, behind one `Transport` interface (`base.py`): an in-process hub
(`memory.py`), the hivemind DHT (`hivemind_*.py`), GossipSub over py-libp2p in a child process (`libp2p*.py`),
and the record rules every stored record obeys (`records.py`)."""
