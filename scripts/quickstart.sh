#!/usr/bin/env bash
# Install ragline, ingest the bundled example corpus into FAISS, search it (dense + BM25 fused per
# document, as examples/qa.yaml configures), and answer a question with the bundled local model
# (SmolLM2-135M-Instruct through llama.cpp). Offline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh quickstart
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/rag ingest examples/corpus --config examples/qa.yaml
.venv/bin/rag search "How do I tune an HNSW index?" --config examples/qa.yaml --k 3
.venv/bin/rag ask "How does HNSW find nearest neighbours?" --config examples/qa.yaml
