#!/usr/bin/env bash
# Install ragline, ingest the bundled example corpus into FAISS and search it. Offline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh quickstart
export HF_HUB_OFFLINE=1
.venv/bin/rag ingest examples/corpus --config examples/ingest.yaml
.venv/bin/rag search "How do I tune an HNSW index?" --config examples/ingest.yaml --k 3
