"""`protocol` must import alone: no torch, no network stack, nothing from swarmnode."""

import subprocess
import sys


def test_protocol_imports_without_torch_or_network() -> None:
    code = (
        "import sys, protocol, protocol.testvectors\n"
        "bad = [m for m in ('torch', 'hivemind', 'aiohttp', 'transformers', 'swarmnode', 'socket', 'asyncio')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
