"""A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary folder, `pg_ctl`
on a free port on 127.0.0.1, stopped and deleted at the end.

PostgreSQL refuses to run as root, so under root the cluster runs as the system user
`aftersale-pg` (created with useradd when missing). The server outlives a test run that
is killed outright (SIGKILL, a CI timeout), so each cluster notes the process it belongs
to, and the next run stops and deletes any whose process is gone. Durability is switched off (fsync,
synchronous commit): the tests want speed, and the cluster is thrown away anyway. Each
test gets a migrated database of its own, empty: copied from a migrated template the first
time, emptied with TRUNCATE and handed out again after (cheaper than a new copy).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg

from aftersale.store import open_store
from aftersale.store.rows import TABLES
from tests.support.servers import free_port

USER = "aftersale-pg"
TEMPLATE = "aftersale_template"
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def find_bindir() -> Path | None:
    """Debian's newest /usr/lib/postgresql/N/bin, else wherever pg_ctl is on PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _unprivileged_user() -> str | None:
    """The user to run the server as: aftersale-pg under root (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )
    return USER


#: Where clusters live (not pytest's tmp_path: its folders are private to root, and the
#: server's user must enter), and the file naming the process each belongs to.
PREFIX = "aftersale-pg-"
OWNER_FILE = "owner.pid"


def reap_orphans(bindir: Path) -> None:
    """Stop and delete the clusters of test runs that died without stopping theirs."""
    for root in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or still being set up
        if Path(f"/proc/{owner}").exists():
            continue
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            user=_unprivileged_user(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


class PostgresCluster:
    def __init__(self, bindir: Path, settings: Mapping[str, str] | None = None) -> None:
        self.bindir = bindir
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._free: list[str] = []
        if self.user:
            shutil.chown(self.root, self.user)

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            check=True,
            user=self.user,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
            "-t", "60", "-o", f"-p {self.port} -k {self.root} {options}", "start",
        )  # fmt: skip
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        open_store(self.url(TEMPLATE)).close()  # migrated once; each test's copy starts here

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            yield conn

    @contextmanager
    def database(self) -> Iterator[str]:
        """An empty, migrated database for one test; yields its URL."""
        if self._free:
            name = self._free.pop()
        else:
            name = f"t{next(self._names)}"
            with self.admin() as conn:
                conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        yield self.url(name)
        with psycopg.connect(self.url(name), autocommit=True) as conn:
            conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        self._free.append(name)


@contextmanager
def running_cluster(
    settings: Mapping[str, str] | None = None,
) -> Iterator[PostgresCluster | None]:
    """A started cluster, or None when no PostgreSQL binaries are installed; `settings`
    replace or add to SERVER_SETTINGS."""
    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    reap_orphans(bindir)
    cluster = PostgresCluster(bindir, settings)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = cluster.log()
        cluster.stop()
        raise RuntimeError(
            f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')}\n{log}"
        ) from exc
    try:
        yield cluster
    finally:
        cluster.stop()
