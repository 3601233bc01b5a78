"""Throughput of embedder.http against a real embedding server versus the local embedder.

The server is ragline's own ``rag serve`` (a separate process on 127.0.0.1, a free port) over
``examples/ingest.yaml``: it embeds with all-MiniLM-L6-v2 on this machine's CPU, the same model
and batch size the local baseline uses in this process. The client is ``embedder.http`` with
the OpenAI-compatible API (``/v1/embeddings``), the TEI-style one (``/v1/embed``) and the Open
Inference Protocol (KServe v2, ``/v2/models/all-MiniLM-L6-v2/infer``), at several concurrency
limits. Every variant embeds the same chunks of the cranfield corpus;
variants run interleaved, ``--repeats`` rounds, and the best round counts (the machine may be
shared). The ratio to local encoding is the cost of the network hop, JSON and the server.

Both sides compute on the same CPUs here, so this measures overhead, not the gain of a bigger
remote machine.

    python benchmarks/remote_embed.py [--data ../shared/data] [--chunks 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, timed
from onnx_embed import chunk_texts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
KEY = "bench-remote-embed-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, index_dir: str) -> subprocess.Popen:
    env = {**os.environ, "RAGLINE_API_KEYS": KEY, "RAG_INDEX_DIR": index_dir}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "rag.cli", "serve", "--config"]
    command += [str(ROOT / "examples" / "ingest.yaml"), "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"rag serve exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"rag serve did not answer at {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--chunk-size", type=int, default=128, help="chunk size in tokens")
    parser.add_argument("--batch-size", type=int, default=64, help="as examples/ingest.yaml")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    corpus = args.data / "cranfield" / "corpus.jsonl"
    if not corpus.exists():
        print(f"skipped: {corpus} not found (this benchmark reads ../shared/data; --data DIR)")
        return 0
    os.environ["RAGLINE_BENCH_EMBED_KEY"] = KEY
    from rag.connectors.embedders.http import HttpEmbedder
    from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder

    texts = chunk_texts(corpus, args.chunks, args.chunk_size)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="ragline-remote-bench-") as index_dir:
        server = start_server(port, index_dir)
        try:
            wait_ready(url, server)
            local = SentenceTransformersEmbedder(
                model="all-MiniLM-L6-v2", device="cpu", batch_size=args.batch_size
            )
            local.warm_up()
            variants = {"local (in process)": local}
            for api in ("openai", "tei", "kserve"):
                for limit in args.concurrency:
                    variants[f"http {api}, concurrency {limit}"] = HttpEmbedder(
                        base_url=url if api == "kserve" else f"{url}/v1",
                        api=api,
                        model="all-MiniLM-L6-v2",
                        api_key="${RAGLINE_BENCH_EMBED_KEY}",
                        batch_size=args.batch_size,
                        max_concurrency=limit,
                    )
            for embedder in variants.values():
                embedder.embed_documents(texts[: args.batch_size])  # warm both sides
            times: dict[str, list[float]] = {name: [] for name in variants}
            vectors = {}
            for _ in range(args.repeats):
                for name, embedder in variants.items():
                    seconds, vectors[name] = timed(lambda e=embedder: e.embed_documents(texts))
                    times[name].append(seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"machine: {machine()}")
    print(
        f"{len(texts)} cranfield chunks of <= {args.chunk_size} tokens, batch size "
        f"{args.batch_size}, best of {args.repeats} interleaved rounds; server: rag serve "
        f"(examples/ingest.yaml) on 127.0.0.1, same CPUs"
    )
    base = len(texts) / min(times["local (in process)"])
    reference = vectors["local (in process)"]
    for name, runs in times.items():
        rate = len(texts) / min(runs)
        cosine = float(np.sum(vectors[name] * reference, axis=1).min())
        print(
            f"  {name:28s} {rate:7.1f} chunks/s  ratio {rate / base:.2f}  "
            f"min cosine to local {cosine:.6f}  (runs: {', '.join(f'{t:.1f} s' for t in runs)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
