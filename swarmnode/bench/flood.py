"""The flooding peer of `swarmnode bench soak`: a process of its own on the hivemind DHT that, until SIGTERM,
publishes many valid signed batches (`attacks.Crowd` with one identity by default: `--batches` a cycle) and
junk records that break the record rules, every `--every-s` seconds. It joins through `--peers` and its own
peers cache, like a node, so it stays in the swarm when the bootstrap node is gone.

    python -m swarmnode.bench.flood --swarm NAME --peers MADDR ... --dir DIR
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m swarmnode.bench.flood")
    parser.add_argument("--swarm", required=True)
    parser.add_argument("--peers", nargs="+", default=[])
    parser.add_argument("--dir", required=True, help="its peers cache goes here")
    parser.add_argument("--identities", type=int, default=1, help="more than one: sybils")
    parser.add_argument("--batches", type=int, default=8, help="batches per identity per cycle")
    parser.add_argument("--every-s", type=float, default=3.0)
    parser.add_argument("--junk", type=int, default=4, help="junk records per cycle (refused by every node)")
    args = parser.parse_args(argv)

    from swarmnode.bench.attacks import Crowd
    from swarmnode.swarm.transports.base import TransportError
    from swarmnode.swarm.transports.hivemind_dht import HivemindTransport
    from swarmnode.swarm.transports.peers_cache import PeersCache
    from swarmnode.tasks import TaskSet, make_task

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cache = PeersCache.of_run_dir(Path(args.dir))
    transport = HivemindTransport(args.swarm, initial_peers=args.peers, op_timeout_s=10.0, peers_cache=cache)
    try:
        print("flood: peer addresses " + " ".join(transport.visible_maddrs()), flush=True)
        crowd = Crowd(transport, args.swarm, TaskSet([make_task("add")]), args.identities, poison=False)
        cycle = 0
        while not stop.is_set():
            cycle += 1
            for _ in range(args.batches):
                crowd.publish(cycle)
            junk_ok = 0
            for k in range(args.junk):  # records no honest node writes: each refused and counted by the others
                blob = os.urandom(256 + 64 * k)
                key = f"{args.swarm}/batch/{os.urandom(32).hex()}" if k % 2 else f"{args.swarm}/ann/{cycle}/{k}"
                try:
                    junk_ok += transport.put_record(key, blob, subkey=None if k % 2 else "junk", timeout=5.0)
                except TransportError:
                    pass
            if cycle % 20 == 1:
                print(
                    f"flood: cycle {cycle}: {crowd.published} batches published, {crowd.failures} failed; "
                    f"junk taken this cycle {junk_ok}/{args.junk}",
                    flush=True,
                )
            stop.wait(args.every_s)
        print(f"flood: stopped after {crowd.published} batches", flush=True)
    finally:
        transport.close()


if __name__ == "__main__":
    main()
