"""The HTTP API of ragline (FastAPI + uvicorn): ``rag serve --config qa.yaml``.

- :func:`create_app` builds the application from a pipeline file (tests build it directly);
- :func:`serve` runs it with uvicorn (and with ``grpc_port`` the gRPC API beside it);
- :class:`GrpcServer` serves the same backend over gRPC (``ragline.v1.Ragline``);
- keys come from ``RAGLINE_API_KEYS`` (comma-separated, full access) and from a keys file of
  scoped keys (:func:`load_keys_file`: each key's name, enforced filter such as
  ``{"tenant": "acme"}`` and operations, as :class:`ApiKey` / :class:`KeyScope`); without keys
  the server refuses to start unless it is told ``--no-auth`` (``no_auth=True``) for local
  development.

Needs the ``serve`` extra: ``pip install 'ragline[serve]'``.
"""

from rag.serve._keys import (
    API_KEYS_ENV,
    API_KEYS_FILE_ENV,
    ApiKey,
    KeyScope,
    api_keys_from_env,
    load_keys_file,
    parse_api_keys,
)

__all__ = [
    "API_KEYS_ENV",
    "API_KEYS_FILE_ENV",
    "ApiKey",
    "GrpcServer",
    "KeyScope",
    "api_keys_from_env",
    "create_app",
    "load_keys_file",
    "parse_api_keys",
    "serve",
]


def __getattr__(name: str):  # fastapi is imported only when the app is built
    if name == "create_app":
        from rag.serve._app import create_app

        return create_app
    if name == "GrpcServer":  # grpcio is imported only when the gRPC API is served
        from rag.serve._grpc import GrpcServer

        return GrpcServer
    if name == "serve":
        from rag.serve.cli_serve import serve

        return serve
    raise AttributeError(f"module 'rag.serve' has no attribute {name!r}")
