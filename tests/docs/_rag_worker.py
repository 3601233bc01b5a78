"""One process that runs ``rag`` commands for the docs tests, so torch and the models' code
are imported once instead of once per command.

``python _rag_worker.py SOCKET`` serves a Unix socket; ``_rag_worker.py --client SOCKET ARGS``
(what the ``rag`` shim on the docs blocks' PATH runs) sends the arguments, environment,
working directory and standard input of one call, and exits with the command's code after
writing its stdout and stderr. Each call runs the real CLI (``rag.cli.app``) through typer's
CliRunner, one at a time.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys


def _send(connection: socket.socket, data: dict) -> None:
    connection.sendall(json.dumps(data).encode())
    connection.shutdown(socket.SHUT_WR)


def _receive(connection: socket.socket) -> dict:
    parts = []
    while chunk := connection.recv(1 << 16):
        parts.append(chunk)
    return json.loads(b"".join(parts))


def client(path: str, args: list[str]) -> int:
    """Run ``rag ARGS`` in the worker; print its output; return its exit code."""
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        _send(
            connection,
            {
                "args": args,
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "stdin": base64.b64encode(stdin).decode(),
            },
        )
        reply = _receive(connection)
    sys.stdout.buffer.write(base64.b64decode(reply["stdout"]))
    sys.stderr.buffer.write(base64.b64decode(reply["stderr"]))
    return int(reply["code"])


def serve(path: str) -> None:
    """Answer calls until killed."""
    from typer.testing import CliRunner

    from rag.cli import app

    runner = CliRunner()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        print("ready", flush=True)
        while True:
            connection, _ = server.accept()
            with connection:
                request = _receive(connection)
                os.chdir(request["cwd"])
                env = {k: v for k, v in request["env"].items() if os.environ.get(k) != v}
                result = runner.invoke(
                    app,
                    request["args"],
                    input=base64.b64decode(request["stdin"]),
                    env=env,
                    catch_exceptions=True,
                )
                stderr = result.stderr_bytes or b""
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    import traceback

                    stderr += "".join(traceback.format_exception(*result.exc_info)).encode()
                _send(
                    connection,
                    {
                        "stdout": base64.b64encode(result.stdout_bytes).decode(),
                        "stderr": base64.b64encode(stderr).decode(),
                        "code": result.exit_code,
                    },
                )


if __name__ == "__main__":
    if sys.argv[1] == "--client":
        sys.exit(client(sys.argv[2], sys.argv[3:]))
    serve(sys.argv[1])
