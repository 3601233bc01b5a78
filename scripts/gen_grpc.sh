#!/usr/bin/env bash
# Regenerate the gRPC Python modules from rag/serve/proto/ragline.proto (grpcio-tools, in the
# dev extra). The generated files are checked in, so serving needs only grpcio and protobuf.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. --grpc_python_out=. \
    rag/serve/proto/ragline.proto
echo "generated rag/serve/proto/ragline_pb2{.py,.pyi,_grpc.py}"
