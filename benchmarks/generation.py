"""Local generation speed and the RAG chain's overhead over a direct llama.cpp call.

Measures, in one run and on one loaded model:

1. load time of ``generator.llama_cpp`` (``smollm2-135m-instruct`` unless ``--model``);
2. tokens/s of the generator, non-streamed and streamed;
3. the chain's overhead: ``RagChain.ask`` (retrieval excluded: its time is subtracted, and the
   retriever is an in-memory list) against ``llama_cpp.Llama.create_chat_completion`` called
   directly with the very messages the chain sent and the same settings (greedy, same seed,
   same max_tokens). The KV cache is reset before every timed call so both evaluate the whole
   prompt; calls alternate so drift in machine load hits both. Target: chain <= 1.05x direct.

Run:
    .venv/bin/python benchmarks/generation.py [--repeats 5] [--max-tokens 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.chains import RagChain  # noqa: E402
from rag.connectors.generators.llama_cpp import LlamaCppGenerator  # noqa: E402
from rag.core import Chunk, Component, Hit  # noqa: E402

QUESTION = "How does an HNSW index find the nearest neighbours of a query?"


class FixedRetriever(Component):
    """Returns the same passages for every query (retrieval is not what is measured here)."""

    outputs = {"hits": list[Hit]}

    def __init__(self, *, texts: list[str]) -> None:
        self.texts = texts

    def retrieve(self, query: str, *, k: int | None = None, filters: Any = None) -> list[Hit]:
        chunks = [
            Chunk.create(text=t, source_id=f"passage{i}", position=0)
            for i, t in enumerate(self.texts[: k or 4])
        ]
        return [Hit(c, 1.0 - i / 100) for i, c in enumerate(chunks)]

    def run(self, query: str) -> dict[str, Any]:
        return {"hits": self.retrieve(query)}


def corpus_passages(count: int) -> list[str]:
    texts = []
    for path in sorted((ROOT / "examples" / "corpus").glob("*.md")):
        texts += [p.strip() for p in path.read_text().split("\n\n") if len(p.strip()) > 200]
    return texts[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--context-size", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--contexts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    generator = LlamaCppGenerator(
        model=args.model,
        context_size=args.context_size,
        threads=args.threads,
        max_tokens=args.max_tokens,
        seed=0,
    )
    start = time.perf_counter()
    generator.warm_up()
    load_s = time.perf_counter() - start
    llm = generator.llama

    # 1. tokens/s of the generator itself.
    messages = [{"role": "user", "content": "Write a short paragraph about vector search."}]
    rates, stream_rates = [], []
    for _ in range(args.repeats):
        llm.reset()
        start = time.perf_counter()
        result = generator.generate(messages)
        rates.append(result.usage.completion_tokens / (time.perf_counter() - start))
        llm.reset()
        start = time.perf_counter()
        *_, final = generator.generate(messages, stream=True)
        stream_rates.append(final.usage.completion_tokens / (time.perf_counter() - start))

    # 2. chain vs. direct call with the same messages and settings.
    chain = RagChain(
        retriever=FixedRetriever(texts=corpus_passages(args.contexts)),
        generator=generator,
        k=args.contexts,
    )
    chain.warm_up()
    probe = chain.ask(QUESTION)  # the messages the chain sends, and a warm path
    settings = {
        "max_tokens": args.max_tokens,
        "temperature": generator.temperature,
        "top_p": generator.top_p,
        "repeat_penalty": generator.repeat_penalty,
        "seed": generator.seed,
    }
    chain_s, direct_s, ratios = [], [], []
    tokens = {"chain": probe.usage.completion_tokens, "direct": None}
    for _ in range(args.repeats):
        llm.reset()
        start = time.perf_counter()
        direct = llm.create_chat_completion(messages=probe.messages, **settings)
        direct_time = time.perf_counter() - start
        tokens["direct"] = direct["usage"]["completion_tokens"]
        llm.reset()
        answer = chain.ask(QUESTION)
        chain_time = answer.timings["total"] - answer.timings["retrieve"]
        chain_s.append(chain_time)
        direct_s.append(direct_time)
        ratios.append(chain_time / direct_time)

    figures = {
        "model": args.model,
        "threads": args.threads,
        "load_seconds": round(load_s, 3),
        "tokens_per_second": round(statistics.median(rates), 1),
        "tokens_per_second_streamed": round(statistics.median(stream_rates), 1),
        "prompt_tokens": probe.usage.prompt_tokens,
        "completion_tokens": tokens,
        "direct_seconds_median": round(statistics.median(direct_s), 4),
        "chain_seconds_median": round(statistics.median(chain_s), 4),
        "chain_over_direct_median": round(statistics.median(ratios), 3),
        "chain_over_direct_all": [round(r, 3) for r in ratios],
        "chain_overhead_ms_median": round(
            1000 * statistics.median(c - d for c, d in zip(chain_s, direct_s)), 1
        ),
        "target": "chain_over_direct_median <= 1.05",
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"model {args.model}: loaded in {load_s:.2f} s")
    print(
        f"generation: {figures['tokens_per_second']} tokens/s "
        f"({figures['tokens_per_second_streamed']} streamed), median of {args.repeats}"
    )
    print(
        f"chain vs direct llama_cpp call ({probe.usage.prompt_tokens} prompt tokens, "
        f"{args.contexts} contexts, completion tokens {tokens}):"
    )
    print(f"  direct  {figures['direct_seconds_median']:.3f} s")
    print(f"  chain   {figures['chain_seconds_median']:.3f} s (retrieval excluded)")
    print(
        f"  ratio   {figures['chain_over_direct_median']:.3f}x median "
        f"(all: {', '.join(f'{r:.3f}' for r in ratios)}); target <= 1.05x; "
        f"overhead {figures['chain_overhead_ms_median']} ms"
    )


if __name__ == "__main__":
    main()
