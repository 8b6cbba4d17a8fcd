"""Who this node trusts, and how far: the peer book, seniority and the words for it, strikes and bans, and
the one list of reasons a peer's data is refused."""
