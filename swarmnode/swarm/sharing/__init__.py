"""The sharing pipeline: publishing this node's rollouts, reading peers' offers, planning downloads by
standing, fetching, validating, and handing groups to the round (in line, or from the I/O thread)."""
