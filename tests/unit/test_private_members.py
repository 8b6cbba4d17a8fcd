"""Tests and benches use the node, the swarm and the transports through their public surface only.

A test that reaches into `node._report` or `exchange._done` tests a private arrangement, breaks on every
refactoring and lets the public API go untested; a bench that does so measures something users cannot run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWNERS = [ROOT / "swarmnode" / "node.py", *sorted((ROOT / "swarmnode" / "swarm").glob("*.py"))]
USERS = [*sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "swarmnode" / "bench").glob("*.py"))]


def private_members(files: list[Path]) -> set[str]:
    """Names `_x` (not dunder) that the classes of these files define as methods or set on `self`."""
    names: set[str] = set()
    for path in files:
        for cls in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)):
            for node in ast.walk(cls):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                    names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def reaches(source: str, name: str, private: set[str]) -> list[str]:
    """`obj._x` in a file, where `_x` is one of `private` and `obj` is not the file's own `self`/`cls`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
                continue
            found.append(f"{name}:{node.lineno}: .{node.attr}")
    return found


def test_the_scan_finds_private_members() -> None:
    private = private_members(OWNERS)
    assert {"_on_signal", "_print", "_resume"} <= private  # Node's
    probe = "node._on_signal(2, None)\nself._print('fine: a class of the test itself')\nx.public()\n"
    assert reaches(probe, "probe", private) == ["probe:1: ._on_signal"]


def test_no_test_or_bench_touches_a_private_member_of_the_node_the_swarm_or_a_transport() -> None:
    private = private_members(OWNERS)
    offenders = [line for p in USERS for line in reaches(p.read_text(), str(p.relative_to(ROOT)), private)]
    assert not offenders, "\n".join(offenders)
