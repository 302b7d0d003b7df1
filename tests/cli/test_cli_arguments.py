"""Bad CLI arguments get a message naming the value, never a traceback (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "--now", "garbage"], "'garbage' is not a time like 2026-11-23T07:00:00+00:00"),
        (["run", "--now", "0001-01-01T00:00:00+14:00"], "is not a time like"),
        (["simulate", "--from", "x", "--to", "y"], "'x' is not a time like"),
        (["track", "--carrier", "dhl", "--parse", "/nonexistent/x.json"], "cannot read"),
        (["messages", "list", "--state", "[bold]x[/]"], "state '[bold]x[/]' is not one of"),
    ],
)
def test_a_bad_argument_is_named_not_a_traceback(
    args: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFTERSALE_DB", str(tmp_path / "a.duckdb"))
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (1, 2)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert said in " ".join((result.stdout + result.stderr).split())
