"""A throwaway Milvus standalone server for the tests: the ``milvus`` package's server (2.3.5,
installed by the ``dev`` extra) on 127.0.0.1, every port chosen free, data in a temporary
directory, stopped and removed at the end.

The package's ``milvus-server`` command picks each listening port from the value it is given
(scanning upwards when taken), but its embedded etcd listens on etcd's own defaults (2379 and
2380) whatever ``--etcd-port`` says, so two servers on one machine (two test sessions, CI beside
a developer) would collide. Milvus reads an etcd configuration file named by the environment
variable ``ETCD_CONFIG_PATH`` (its ``etcd.config.path`` setting); the file written here moves
etcd's client and peer listeners to free ports too.

Where the package is missing, :func:`find_server` says why and the tests skip naming
``MILVUS_URL``, which points them at a running server instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MILVUS_URL_VARIABLE = "MILVUS_URL"
START_TIMEOUT = 180.0
# The milvus-server options that name a listening port (besides --proxy-port, the client's).
_PORT_OPTIONS = (
    "--etcd-port",
    "--root-coord-port",
    "--proxy-internal-port",
    "--query-coord-port",
    "--query-node-port",
    "--index-coord-port",
    "--index-node-port",
    "--data-coord-port",
    "--data-node-port",
)


def find_server() -> str:
    """``""`` when the ``milvus`` package (the standalone server) is installed, else why not."""
    if importlib.util.find_spec("milvus") is None:
        return "the 'milvus' package (Milvus standalone 2.3.5) is not installed"
    if sys.platform != "linux":
        return f"the packaged Milvus server is tested on Linux only, not {sys.platform}"
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MilvusServer:
    """One Milvus standalone server in a temporary directory.

    Example::

        server = MilvusServer()
        url = server.start()      # http://127.0.0.1:PORT
        ...
        server.stop()
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ragline-milvus-"))
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _etcd_config(self) -> Path:
        client, peer = free_port(), free_port()
        path = self.root / "etcd.yaml"
        path.write_text(
            f"listen-client-urls: http://127.0.0.1:{client}\n"
            f"advertise-client-urls: http://127.0.0.1:{client}\n"
            f"listen-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{peer}\n"
        )
        return path

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        from pymilvus import MilvusClient

        started = time.monotonic()
        self.port = free_port()
        command = [
            sys.executable,
            "-c",
            "import milvus; milvus.main()",
            "--data",
            str(self.root / "data"),
            "--proxy-port",
            str(self.port),
        ]
        for option in _PORT_OPTIONS:
            command += [option, str(free_port())]
        env = {**os.environ, "ETCD_CONFIG_PATH": str(self._etcd_config())}
        log = (self.root / "server.log").open("wb")
        # A session of its own: stop() ends the wrapper and the server binary it starts together.
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        last_error: Exception | None = None
        while time.monotonic() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                break
            try:
                client = MilvusClient(uri=self.url, timeout=5)
                client.get_server_version()
                client.close()
                self.startup_seconds = time.monotonic() - started
                return self.url
            except Exception as err:  # not up yet: any client error means "try again"
                last_error = err
                time.sleep(0.5)
        output = self.log_tail()
        self.stop()
        raise RuntimeError(
            f"Milvus standalone did not answer at {self.url} within {START_TIMEOUT:.0f} s "
            f"({last_error}); its output:\n{output}"
        )

    def log_tail(self, size: int = 3000) -> str:
        logs = [self.root / "server.log", *sorted((self.root / "data" / "logs").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace")[-size:] for p in logs if p.exists())

    def stop(self) -> None:
        """Stop the server (its whole process group) and delete its directory."""
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                # SIGKILL at once: the data is thrown away, and a graceful stop takes ~15 s
                group = os.getpgid(process.pid)
                os.killpg(group, signal.SIGKILL)
                process.wait(timeout=30)
                for _ in range(100):  # the server binary may outlive the wrapper for a moment
                    try:
                        os.killpg(group, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.1)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
