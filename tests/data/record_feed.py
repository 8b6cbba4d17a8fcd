"""Record the status feed the dashboard tests play back: three real nodes (tiny model) in a hivemind
swarm on 127.0.0.1, node 0's /status fetched at a few moments, written to status_feed.json.

    .venv/bin/python -m tests.data.record_feed
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.helpers import SWARMNODE, logged_address, wait_for

OUT = Path(__file__).with_name("status_feed.json")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        procs = []
        try:
            first_peers: list[str] = []
            for i in range(3):
                log = (tmp / f"n{i}.log").open("w")
                command = [SWARMNODE, "join", "--swarm", "demo", "--minutes", "5", "--run-dir", str(tmp / f"n{i}")]
                command += ["--seed", str(i), "--threads", "1", "--backend", "hf", "--set", "eval.every=10"]
                command += ["--set", "eval.questions=40", "--set", f"swarm.key_path={tmp / f'k{i}.pem'}"]
                command += ["--set", "status.port=0"] + (["--peers", *first_peers] if first_peers else [])
                procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
                if i == 0:
                    first_peers = [logged_address(tmp / "n0.log", 120)]
            url = wait_for(lambda: (tmp / "n0" / "status.url").exists(), "status url", 120)
            url = (tmp / "n0" / "status.url").read_text().strip()
            feed = []
            for wait in (0, 25, 20):
                time.sleep(wait)
                with urllib.request.urlopen(url + "/status", timeout=10) as response:
                    feed.append(json.loads(response.read()))
            OUT.write_text(json.dumps(feed, indent=1) + "\n")
            print(f"wrote {OUT}: {len(feed)} snapshots, peers {[len(s['peers']) for s in feed]}")
        finally:
            for p in procs:
                p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait(timeout=120)


if __name__ == "__main__":
    main()
