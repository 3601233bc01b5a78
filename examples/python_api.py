"""ragline from Python, without a pipeline file: ingest a folder into FAISS, search it, answer
a question with citations, and write the same application out as YAML.

Run from the repository root (after ./scripts/quickstart.sh):

    .venv/bin/python examples/python_api.py [INDEX_DIR]

docs/how-to/python-api.md walks through it; the test suite runs it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rag import Pipeline, PipelineFile
from rag.chains import EvidenceStyle, RagChain
from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
from rag.connectors.generators.llama_cpp import LlamaCppGenerator
from rag.connectors.retrievers.dense import DenseRetriever
from rag.connectors.stores.faiss import FaissStore
from rag.pipelines.ingest import run_ingest
from rag.pipelines.loaders import FileLoader
from rag.pipelines.splitters import MarkdownSplitter
from rag.pipelines.writer import StoreWriter

CORPUS = Path(__file__).resolve().parent / "corpus"


def main(index_dir: Path) -> None:
    # 1. The components: one embedder and one store, shared by ingestion and retrieval.
    embedder = SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", device="cpu")
    store = FaissStore(path=str(index_dir))
    ingest = Pipeline("ingest")
    ingest.add_component("loader", FileLoader())
    ingest.add_component("splitter", MarkdownSplitter(chunk_size=128, tokenizer="all-MiniLM-L6-v2"))
    ingest.add_component("embedder", embedder)
    ingest.add_component("writer", StoreWriter(store=store))  # linear: connections inferred

    # 2. Ingest: incremental, so a second run embeds only what changed.
    report = run_ingest(ingest, [str(CORPUS)], progress=False)
    print(f"ingested {report.sources} files: {report.chunks_written} chunks written")

    # 3. Search: the k chunks nearest to a query, with their scores and metadata.
    retriever = DenseRetriever(embedder=embedder, store=store, k=4)
    for hit in retriever.retrieve("How do I tune an HNSW index?", k=2):
        print(f"{hit.score:.3f}  {hit.chunk.metadata['source']}")

    # 4. Answer: the default style for a local model copies the answering sentence, cited.
    chain = RagChain(
        retriever=retriever,
        generator=LlamaCppGenerator(model="smollm2-135m-instruct"),
        answer_style=EvidenceStyle(embedder=embedder),
    )
    chain.warm_up()
    answer = chain.ask("What does the parameter M control in an HNSW index?")
    print(answer.text)
    for citation in answer.citations:
        print(f"  [{citation.index}] {citation.source}")
    print(f"  grounded: {answer.grounded}, seconds: {answer.timings['total']:.2f}")

    # 5. The same application as a pipeline file, for `rag ask --config app.yaml`.
    ask = Pipeline("ask")
    ask.add_component("chain", chain)
    app = PipelineFile(
        components={"embedder": embedder, "store": store, "retriever": retriever},
        pipelines={"ingest": ingest, "ask": ask},
    )
    app.dump(index_dir / "app.yaml")
    print(f"wrote {index_dir / 'app.yaml'}")
    store.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
