"""A throw-away PostgreSQL server for acceptance tests, as the store's
Rust tests start one (crates/store/tests/support): Debian's `postgresql`
binaries, a cluster initialised in a temporary directory with the C
collation mallee needs, listening only on a unix socket there, run as the
`postgres` user when the tests run as root. Debian's own cluster is
neither needed nor touched."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def pg_bin() -> Path:
    found = sorted(
        (int(p.name), p / "bin")
        for p in Path("/usr/lib/postgresql").glob("*")
        if p.name.isdigit() and (p / "bin" / "initdb").exists()
    )
    assert found, "PostgreSQL's initdb not found: install Debian's postgresql package"
    return found[-1][1]


class PgServer:
    def __init__(self):
        self.bin = pg_bin()
        # Not under pytest's tmp dir: that is private to root, and the
        # server runs as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="mallee-pg-"))
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.run_as:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._run("initdb", "-D", data, "--auth=trust", "--username=mallee", "--locale=C",
                  "--encoding=UTF8", "--no-sync")
        # Each mallee server holds a pool of connections: room for a whole
        # test session's clouds.
        self._run("pg_ctl", "-D", data, "-l", self.dir / "server.log", "-o",
                  f"-k {self.dir} -c listen_addresses='' -c fsync=off -c max_connections=400",
                  "-w", "-t", "60", "start")
        self._names = itertools.count()
        self.url = self.create_database("mallee")

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"mallee_{next(self._names)}"
        self._run("psql", "-h", self.dir, "-U", "mallee", "-d", "postgres", "-c", f"CREATE DATABASE {name}")
        return f"postgres://mallee@localhost/{name}?host={self.dir}"

    def _run(self, program: str, *args) -> None:
        out = subprocess.run([*self.run_as, str(self.bin / program), *map(str, args)],
                             capture_output=True, text=True, cwd=self.dir, timeout=120)
        assert out.returncode == 0, f"{program}: {out.stdout}{out.stderr}"

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", "immediate", "-w", "stop"], capture_output=True, cwd=self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
