"""A throwaway PostgreSQL server (with pgvector) for the tests: initdb into a temporary
directory, a random port on 127.0.0.1, stopped and removed at the end.

``initdb`` and ``postgres`` refuse to run as root, so as root the server runs as the
``postgres`` user (``runuser``), in a directory handed over to it. Where no PostgreSQL with
pgvector is installed (``scripts/install_postgres.sh`` installs it on Debian), :func:`find_bin_dir`
says why, and the tests skip naming ``RAGLINE_PG_URL``, which points them at a running server
instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_URL_VARIABLE = "RAGLINE_PG_URL"


def find_bin_dir() -> tuple[Path | None, str]:
    """The newest ``/usr/lib/postgresql/*/bin`` whose server has pgvector, or why there is none."""
    candidates = (
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name),
            reverse=True,
        )
        if Path("/usr/lib/postgresql").is_dir()
        else []
    )
    if not candidates:
        return None, "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin)"
    for bin_dir in candidates:
        share = Path("/usr/share/postgresql") / bin_dir.parent.name / "extension"
        if (bin_dir / "initdb").exists() and (share / "vector.control").exists():
            return bin_dir, ""
    return None, f"PostgreSQL {candidates[0].parent.name} has no pgvector extension"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server in a temporary directory.

    Example::

        server = PostgresServer(bin_dir)
        url = server.start()      # postgresql://ragline@127.0.0.1:PORT/postgres
        ...
        server.stop()
    """

    def __init__(self, bin_dir: Path, *, user: str = "ragline") -> None:
        self.bin_dir = bin_dir
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="ragline-pg-"))
        self.data = self.root / "data"
        self.port: int | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr[-2000:]}")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        """Create the cluster and start the server; returns its URL."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        last_error: Exception | None = None
        for _ in range(3):  # the port may be taken between choosing and binding it
            self.port = free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root} "
                # a test server: nothing here must survive a power cut
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=40 -c shared_buffers=64MB"
            )
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    options,
                )
                return self.url
            except RuntimeError as err:
                last_error = err
                time.sleep(0.2)
        log = (self.root / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log}")

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin_dir / "pg_ctl"), "stop", "-m", "fast", "-D", str(self.data))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
