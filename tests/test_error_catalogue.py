"""The error catalogue: every mistake a user makes, with the exact message podnet prints.

Each case is a directory ``tests/errors/NN-name/``:

- ``input.yaml`` (and any other file the command line names, e.g. ``probes.yaml``);
- ``args.txt`` (optional): the command line after ``podnet``, split as a shell would; without
  it the case runs ``podnet trace client server:80 -f input.yaml``;
- ``expected.txt``: the exact text podnet writes to stderr, byte for byte;
- ``exit.txt`` (optional): the expected exit status. Without it the status is 2 (bad input or
  usage) and stdout must be empty: nothing was built. With it (a warning case, 0 or 1) stdout
  carries the command's normal output and is not compared.

The CLI runs in process (``podnet.cli.run``) with the case directory as the working directory,
so messages name ``input.yaml`` as a user would see it. To add a case, make the directory, run
the command by hand, read the message as a newcomer would, and save stderr as expected.txt.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest

from podnet.cli import run

ROOT = Path(__file__).parent / "errors"
CASES = sorted(p.name for p in ROOT.iterdir() if p.is_dir())
DEFAULT_ARGS = ["trace", "client", "server:80", "-f", "input.yaml"]


def _case(name: str) -> tuple[list[str], int, str]:
    d = ROOT / name
    args_file = d / "args.txt"
    args = shlex.split(args_file.read_text()) if args_file.exists() else DEFAULT_ARGS
    exit_file = d / "exit.txt"
    code = int(exit_file.read_text()) if exit_file.exists() else 2
    return args, code, (d / "expected.txt").read_text()


@pytest.mark.parametrize("name", CASES)
def test_catalogued_message(name, monkeypatch):
    args, code, expected = _case(name)
    monkeypatch.chdir(ROOT / name)
    monkeypatch.setenv("NO_COLOR", "1")
    out, err = io.StringIO(), io.StringIO()
    status = run(args, out, err)
    assert err.getvalue() == expected
    assert status == code
    if code == 2:
        assert out.getvalue() == ""


def test_catalogue_is_large_and_distinct():
    assert len(CASES) >= 40
    inputs = {}
    for name in CASES:
        args, _, expected = _case(name)
        files = sorted(
            (f.name, f.read_bytes()) for f in (ROOT / name).iterdir() if f.name.endswith(".yaml")
        )
        key = (tuple(files), tuple(args))
        assert key not in inputs, f"{name} repeats {inputs.get(key)}"
        inputs[key] = name
        assert expected.strip(), f"{name}: no message"
        # one line says what and where; anything after it is a hint or a caret picture
        for line in expected.splitlines():
            assert line.startswith(("input.yaml:", "probes.yaml:", "error:", "warning:", "  ")), (
                line
            )


def test_every_warning_case_keeps_its_exit_status():
    for name in CASES:
        _, code, expected = _case(name)
        if code != 2:
            assert "warning:" in expected and "error:" not in expected, name


def test_a_misspelt_command_gets_the_closest_one():
    """Not catalogued byte for byte: the list of commands grows."""
    out, err = io.StringIO(), io.StringIO()
    assert run(["trcae", "a", "b"], out, err) == 2
    assert out.getvalue() == ""
    first, hint = err.getvalue().splitlines()
    assert first.startswith(
        "error: podnet: argument COMMAND: invalid choice: 'trcae' (choose from 'trace', "
    )
    assert hint == "  hint: did you mean 'trace'? (see 'podnet --help')"
