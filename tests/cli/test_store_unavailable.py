"""Every command that opens the store ends with one `error:` line and exit 1 when the store
can't be opened (here: a DuckDB file another process holds), never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.store import open_store
from tests.store.test_store import _hold

COMMANDS = [
    ["messages", "release", "m-1"],
    ["messages", "list", "--order", "NW-1"],
    ["messages", "show", "m-1"],
    ["suppress", "list"],
    ["suppress", "add", "anna@example.pl"],
    ["orders", "show", "NW-1"],
    ["health"],
]


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("locked") / "a.duckdb"
    open_store(path).close()
    holder = _hold(path, 120)
    yield path
    holder.kill()
    holder.communicate()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_locked_store_is_one_clear_error(
    locked: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFTERSALE_DB", str(locked))
    monkeypatch.setenv("AFTERSALE_STORE_LOCK_WAIT_S", "0.2")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "held by another process" in result.output, result.output
    assert "Traceback" not in result.output
