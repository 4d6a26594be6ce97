"""The README's examples run as written: its Python blocks in order (one namespace), and its
``structgen`` command lines in a folder holding ``person.json`` (the README's own schema)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_python_examples_run(smollm2) -> None:
    blocks = _blocks("python")
    assert len(blocks) >= 3, "the README lost its API examples"
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    result = namespace["result"]
    assert result.complete, result.reason
    jsonschema.validate(result.value, namespace["schema"])


@pytest.mark.slow
def test_readme_command_lines_run(tmp_path: Path, smollm2) -> None:
    schema_block = next(b for b in _blocks("python") if "schema = {" in b)
    source = re.search(r"schema = (\{.*?\})\n", schema_block, flags=re.S)
    assert source is not None
    schema = eval(source.group(1))  # noqa: S307 - a literal from our own README
    (tmp_path / "person.json").write_text(json.dumps(schema))
    script = Path(sys.executable).with_name("structgen")
    lines = [
        line.split("  #")[0].strip()
        for block in _blocks("sh")
        for line in block.splitlines()
        if line.startswith("structgen ")
    ]
    assert len(lines) >= 3, "the README lost its command-line examples"
    for line in lines:
        argv = shlex.split(line)
        run = subprocess.run(
            [str(script), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, (line, run.stderr[-2000:])
        out = run.stdout.strip()
        if "--schema" in argv and argv[1] == "generate":
            jsonschema.validate(json.loads(out), schema)
        elif "--regex" in argv:
            assert re.fullmatch(argv[argv.index("--regex") + 1], out), out
        else:
            assert "type" in out  # the check report lists the schema's keywords
