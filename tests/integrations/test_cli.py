"""The ``structgen`` command line without the model: input errors are one line on stderr with exit
status 2 (never a traceback), ``--schema -`` reads standard input, and a bad constraint is reported
before the model loads. (``test_generate.py`` runs the CLI with the real model.)"""

from __future__ import annotations

import io
import json
import sys

import pytest

import structgen.models
from structgen.cli import main
from structgen.errors import StructgenError


class _ModelLoaded(StructgenError):
    pass


@pytest.fixture(autouse=True)
def _no_model(monkeypatch) -> None:
    """Loading the model is an error ``main`` reports, so a test sees whether it got that far."""

    def load_model(*args, **kwargs):
        raise _ModelLoaded("stub: model load reached")

    monkeypatch.setattr(structgen.models, "load_model", load_model)


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _file(tmp_path, data: bytes | str) -> str:
    path = tmp_path / "schema.json"
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return str(path)


BAD_FILES = {
    "bad_utf8": (b'{"type": "\xff"}', "UTF-8"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "huge_int": ('{"maxLength": ' + "9" * 5000 + "}", "integer"),
    "invalid": ('{"type": ', "not valid JSON"),
}


@pytest.mark.parametrize("command", ["generate", "check"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_unreadable_schema_file(tmp_path, capsys, command, case) -> None:
    data, needle = BAD_FILES[case]
    argv = [command, "--schema", _file(tmp_path, data)]
    if command == "generate":
        argv += ["--prompt", "x"]
    assert main(argv) == 2
    _one_line_error(capsys, needle)


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_unreadable_schema_on_stdin(monkeypatch, capsys, case) -> None:
    data, needle = BAD_FILES[case]
    _stdin(monkeypatch, data if isinstance(data, bytes) else data.encode())
    assert main(["generate", "--schema", "-", "--prompt", "x"]) == 2
    _one_line_error(capsys, "<stdin>", needle)


@pytest.mark.parametrize("option", ["--schema", "--grammar"])
def test_a_directory_as_input_file(tmp_path, capsys, option) -> None:
    assert main(["generate", option, str(tmp_path), "--prompt", "x"]) == 2
    _one_line_error(capsys, "cannot read", str(tmp_path))


def test_grammar_file_not_utf8(tmp_path, capsys) -> None:
    path = tmp_path / "g.lark"
    path.write_bytes(b'start: "\xff"\n')
    assert main(["generate", "--grammar", str(path), "--prompt", "x"]) == 2
    _one_line_error(capsys, "UTF-8")


def test_missing_schema_file(tmp_path, capsys) -> None:
    assert main(["check", "--schema", str(tmp_path / "missing.json")]) == 2
    _one_line_error(capsys, "cannot read")


def test_check_reads_the_schema_from_stdin(monkeypatch, capsys) -> None:
    _stdin(monkeypatch, json.dumps({"type": "integer", "minimum": 3}).encode())
    assert main(["check", "--schema", "-"]) == 0
    out = capsys.readouterr().out
    assert "#/type" in out and "#/minimum" in out


def test_generate_reads_the_schema_from_stdin(monkeypatch, capsys) -> None:
    _stdin(monkeypatch, b'{"type": "integer"}')
    assert main(["generate", "--schema", "-", "--prompt", "x"]) == 2
    _one_line_error(capsys, "stub: model load reached")  # the schema was read and lowered


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--regex", "(", "invalid regex"),
        ("--grammar", "start: (", "invalid lark grammar"),
        ("--grammar", "start: foo", "invalid lark grammar"),
        ("--schema", json.dumps({"type": "integer", "minimum": "x"}), "minimum"),
    ],
)
def test_a_bad_constraint_is_reported_before_the_model_loads(
    tmp_path, capsys, option, value, needle
) -> None:
    if option != "--regex":
        path = tmp_path / "constraint"
        path.write_text(value)
        value = str(path)
    assert main(["generate", option, value, "--prompt", "x"]) == 2
    err = _one_line_error(capsys, needle)
    assert "stub" not in err


def test_a_good_regex_gets_to_the_model(capsys) -> None:
    assert main(["generate", "--regex", "[0-9]+", "--prompt", "x"]) == 2
    _one_line_error(capsys, "stub: model load reached")


def test_a_schema_too_deep_to_lower_is_one_line(tmp_path, capsys) -> None:
    schema: dict = {"type": "integer"}
    for _ in range(400):
        schema = {"items": schema}
    assert main(["check", "--schema", _file(tmp_path, json.dumps(schema))]) == 2
    _one_line_error(capsys)


def test_multi_line_messages_are_joined(capsys, monkeypatch) -> None:
    def load_model(*args, **kwargs):
        raise StructgenError("first line\nsecond line")

    monkeypatch.setattr(structgen.models, "load_model", load_model)
    assert main(["generate", "--regex", "a", "--prompt", "x"]) == 2
    _one_line_error(capsys, "first line second line")
