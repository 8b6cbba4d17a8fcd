"""The package's metadata and the Makefile's choice of Python agree with each other.

pyproject.toml's license is an SPDX string with its text in LICENSE (setuptools >= 77: a license table
stops building on 2027-02-18), every build context that builds the package carries that file, and the
Pythons admitted by requires-python are the ones the classifiers name and the Makefile looks for. The
Makefile's choice is checked by running `make -n` with PATH set to a folder of stand-in interpreters.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
MAKE = shutil.which("make")
# minor versions worth asking about: older than any supported one to well past the newest
MINORS = range(8, 20)


def makefile_pythons() -> list[str]:
    m = re.search(r"^PYTHONS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, "the Makefile names the Pythons it looks for in one `PYTHONS :=` line"
    return m.group(1).split()


def test_the_license_is_an_spdx_string_with_its_text_in_the_repository() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a stub
    # PEP 639: with a license expression, a "License ::" classifier is an error
    assert not [c for c in PROJECT.get("classifiers", []) if c.startswith("License ::")]


def test_the_build_backend_understands_the_license_fields() -> None:
    (spec,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert spec.specifier.contains("77") and not spec.specifier.contains("76.1")


def test_project_urls_are_https_links() -> None:
    urls = PROJECT["urls"]
    assert urls and all(re.fullmatch(r"https://[a-z0-9.-]+\.[a-z]{2,}/\S*", u) for u in urls.values()), urls


def test_requires_python_the_classifiers_and_the_makefile_name_the_same_pythons() -> None:
    spec = SpecifierSet(PROJECT["requires-python"])
    admitted = [f"3.{m}" for m in MINORS if Version(f"3.{m}.0") in spec]
    classified = [c.rsplit(" ", 1)[1] for c in PROJECT["classifiers"] if re.fullmatch(r".*:: Python :: 3\.\d+", c)]
    assert admitted == classified == [p.removeprefix("python") for p in makefile_pythons()]
    assert Version(f"{sys.version_info.major}.{sys.version_info.minor}.0") in spec  # the one running this test
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + admitted[0].replace(".", "")
    assert PYPROJECT["tool"]["mypy"]["python_version"] == admitted[0]


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_every_image_build_carries_the_license_file(name: str) -> None:
    """setuptools refuses to build when a license-files pattern matches nothing."""
    text = (ROOT / "docker" / name).read_text()
    ignore = (ROOT / "docker" / f"{name}.dockerignore").read_text().splitlines()
    copied = {w for line in re.findall(r"^COPY (.+) \./$", text, re.M) for w in line.split()}
    assert "pyproject.toml" in copied
    for path in PROJECT["license-files"]:
        assert path in copied and f"!{path}" in ignore, (name, path)


def stand_in(folder: Path, name: str, minor: int | None) -> None:
    """An interpreter called `name` that reports itself as 3.<minor>; None: a pyenv shim of a version that is
    not selected (on PATH, but it fails)."""
    if minor is None:
        body = f'echo "pyenv: {name}: command not found" >&2\nexit 127\n'
    else:
        fake = f"import sys; sys.version_info = (3, {minor}, 0); exec(sys.argv[1])"
        body = f'[ "$1" = -c ] || exit 3\nexec {sys.executable} -c "{fake}" "$2"\n'
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def make_n(tmp_path: Path, pythons: dict[str, int | None], *args: str) -> subprocess.CompletedProcess[str]:
    """`make -n install` with only `pythons` (and the tools the Makefile itself runs) on PATH."""
    assert MAKE is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cat", "sha256sum", "cut"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    for name, minor in pythons.items():
        stand_in(bin_dir, name, minor)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHON", "VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["PATH"] = str(bin_dir)
    return subprocess.run(
        [MAKE, "-n", "install", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


@needs_make
def test_make_takes_the_first_supported_python_that_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    pythons = {"python3": 10, "python3.10": 10, "python3.11": None, "python3.12": 12, "python3.13": 13}
    out = make_n(tmp_path, pythons, f"VENV={venv}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"python3.12 -m venv --clear {venv}"


@needs_make
@pytest.mark.parametrize(
    ("pythons", "args", "found"),
    [
        ({"python3": 10, "python3.10": 10, "python3.11": None}, (), "python3=3.10"),
        ({}, (), "python3=missing"),
        ({"python3": 12, "python3.10": 10}, ("PYTHON=python3.10",), "python3=3.12 python3.10=3.10"),
    ],
)
def test_make_refuses_in_one_line_without_a_supported_python(
    tmp_path: Path, pythons: dict[str, int | None], args: tuple[str, ...], found: str
) -> None:
    out = make_n(tmp_path, pythons, f"VENV={tmp_path / 'venv'}", *args)
    assert out.returncode != 0 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    supported = "/".join(p.removeprefix("python") for p in makefile_pythons())
    assert f"swarmnode needs Python {supported} (found: {found}); install one" in line, line
    assert "make PYTHON=/path/to/python3" in line


@needs_make
def test_make_asks_for_no_python_once_the_venv_exists(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "pip").touch()
    out = make_n(tmp_path, {}, f"VENV={venv}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"{venv}/bin/python -m pip install --upgrade --quiet pip"
