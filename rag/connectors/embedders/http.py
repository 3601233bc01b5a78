"""``embedder.http``: embeddings from a remote service, over ``httpx``.

Three wire formats cover the services people deploy:

- ``api: openai`` posts ``{"model", "input": [...]}`` to ``{base_url}/embeddings``: OpenAI, vLLM,
  Infinity, Ollama, LM Studio, and ragline's own ``rag serve`` (``/v1/embeddings``).
- ``api: tei`` posts ``{"inputs": [...], "truncate": true}`` to ``{base_url}/embed``: Hugging
  Face Text Embeddings Inference, Inference Endpoints running it, and ``rag serve``
  (``/v1/embed``).
- ``api: kserve`` speaks the Open Inference Protocol (KServe v2 REST): it posts one ``BYTES``
  input tensor of texts to ``{base_url}/v2/models/{model}/infer`` and reads an ``FP32`` output
  of shape ``[n, dimension]``: Triton, KServe, Seldon MLServer, TorchServe's KServe mode, and
  ``rag serve`` (``/v2``).

Texts go in batches of ``batch_size``, at most ``max_concurrency`` requests in flight. A 429, a
5xx, a timeout or a connection error is retried with exponential backoff (the policy
``generator.openai`` uses, see :mod:`rag.connectors._http`). Every answer is checked before any
vector is returned: a body that is not JSON, fewer (or more) vectors than texts, a vector of the
wrong dimension or with non-finite values fails the whole call with an
:class:`~rag.core.errors.EmbeddingError` naming the URL, so an ingestion writes nothing of it.
"""

from __future__ import annotations

import base64
import threading
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from rag.connectors._http import (
    check_http_url,
    check_retries,
    post_with_retries,
    secret_reference,
)
from rag.core.component import Component
from rag.core.documents import Chunk
from rag.core.errors import ConfigError, EmbeddingError
from rag.core.secrets import Secret

APIS = {"openai": "/embeddings", "tei": "/embed", "kserve": "/v2/models/{model}/infer"}
KSERVE_DATATYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
"""Output datatypes of the Open Inference Protocol read as vectors (converted to float32)."""


class HttpEmbedder(Component):
    """Embed chunks and queries with a remote embedding service.

    Args:
        base_url: Service root, e.g. ``https://api.openai.com/v1``, ``http://127.0.0.1:8080``
            (TEI) or ``http://127.0.0.1:8000/v1`` (``rag serve``, either API).
        api: ``openai`` (``POST {base_url}/embeddings``), ``tei`` (``POST {base_url}/embed``) or
            ``kserve`` (``POST {base_url}/v2/models/{model}/infer``, the Open Inference Protocol).
        model: Model name sent with each request; required for ``openai`` and ``kserve`` (where
            it is part of the URL). TEI serves one model, so with ``tei`` it is not sent (it
            still names the model in the pipeline's fingerprint, so changing it re-ingests).
        api_key: Environment variable reference (``${OPENAI_API_KEY}``), sent as
            ``Authorization: Bearer``; ``None`` sends no key.
        dimension: The dimension every vector must have; ``None`` takes it from the first
            answer (and asks the service once when :attr:`dimension` is read before any call).
        batch_size: Texts per request.
        max_concurrency: Requests in flight at once (one connection each).
        normalize: L2-normalize vectors here (cosine similarity becomes the inner product).
        query_prefix: Text prepended to queries (e5/bge-style models need one).
        document_prefix: Text prepended to documents.
        cache_dir: Directory of an on-disk vector cache keyed by content hash; ``None`` = off.
        timeout: Seconds to wait for an answer (read), per attempt.
        connect_timeout: Seconds to wait for a connection.
        max_retries: Retries after a 429, 5xx, timeout or connection error (0 disables them).
        backoff: First wait between attempts in seconds (doubles each retry).
        max_backoff: Longest wait between attempts, including a server's ``Retry-After``.
        input_name: ``kserve`` only: the name of the model's text input tensor.
        output_name: ``kserve`` only: the output tensor holding the vectors; ``None`` takes the
            only output (a model with several must name one).
        transport: An ``httpx`` transport (``httpx.MockTransport`` in tests); not serialized.
        client: A ready ``httpx.Client`` to use instead of building one; not serialized.

    Example:
        >>> embedder = HttpEmbedder(
        ...     base_url="https://api.openai.com/v1",
        ...     model="text-embedding-3-small",
        ...     api_key="${OPENAI_API_KEY}",
        ... )
        >>> embedder.url, embedder.to_dict()["init_parameters"]["api_key"]
        ('https://api.openai.com/v1/embeddings', '${OPENAI_API_KEY}')
    """

    outputs = {"chunks": list[Chunk]}
    _NOT_SERIALIZED = ("transport", "client")

    def __init__(
        self,
        *,
        base_url: str,
        api: str = "openai",
        model: str | None = None,
        api_key: Secret | str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        max_concurrency: int = 4,
        normalize: bool = True,
        query_prefix: str = "",
        document_prefix: str = "",
        cache_dir: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        input_name: str = "text",
        output_name: str | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if api not in APIS:
            raise ConfigError(
                f"api must be one of {', '.join(repr(a) for a in APIS)}, got {api!r}", field="api"
            )
        if api == "openai" and not model:
            raise ConfigError(
                "api 'openai' needs the model name the service expects, e.g. "
                "model: text-embedding-3-small",
                field="model",
            )
        if api == "kserve" and not model:
            raise ConfigError(
                "api 'kserve' needs the name the server serves the model under (it is part of "
                "the URL {base_url}/v2/models/{model}/infer), e.g. model: all-MiniLM-L6-v2",
                field="model",
            )
        if not input_name:
            raise ConfigError("input_name must name the model's input tensor", field="input_name")
        for name, value in (("batch_size", batch_size), ("max_concurrency", max_concurrency)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}", field=name)
        if dimension is not None and dimension < 1:
            raise ConfigError(f"dimension must be at least 1, got {dimension}", field="dimension")
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError(
                f"timeouts must be positive, got timeout={timeout}, "
                f"connect_timeout={connect_timeout}",
                field="timeout",
            )
        check_retries(max_retries)
        self.base_url = check_http_url(base_url)
        self.api = api
        self.model = model
        self.api_key = secret_reference(api_key)
        self.expected_dimension = dimension
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.normalize = normalize
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.input_name = input_name
        self.output_name = output_name
        self._transport = transport
        self._client = client
        self._owns_client = client is None
        self._cache: Any = None
        self._lock = threading.Lock()
        self._seen_dimension: int | None = None
        self.cache_hits = 0

    @property
    def init_parameters(self) -> dict[str, Any]:
        params = super().init_parameters
        for name in self._NOT_SERIALIZED:
            params.pop(name, None)
        return params

    @property
    def url(self) -> str:
        """The URL requests are posted to."""
        model = urllib.parse.quote(self.model or "", safe="")
        return self.base_url + APIS[self.api].format(model=model)

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Open the HTTP client (reads the API key from the environment) and the cache."""
        with self._lock:
            if self._client is None:
                headers = {"Content-Type": "application/json"}
                if self.api_key is not None:
                    headers["Authorization"] = f"Bearer {self.api_key.resolve()}"
                self._client = httpx.Client(
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                    limits=httpx.Limits(
                        max_connections=self.max_concurrency,
                        max_keepalive_connections=self.max_concurrency,
                    ),
                    transport=self._transport,
                )
            if self.cache_dir and self._cache is None:
                from rag.connectors.embedders.sentence_transformers import EmbeddingCache

                key = f"{self.url}|{self.model}|{self.normalize}"
                self._cache = EmbeddingCache(self.cache_dir, key)

    def close(self) -> None:
        """Close the HTTP client (one passed in as ``client`` stays open) and the cache."""
        with self._lock:
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None
            if self._cache is not None:
                self._cache.close()
                self._cache = None

    # -- the protocol --------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """The vectors' dimension: the configured one, else the service's (asked once)."""
        if self.expected_dimension is not None:
            return self.expected_dimension
        if self._seen_dimension is None:
            self._embed(["dimension"])
        assert self._seen_dimension is not None
        return self._seen_dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` (one row each, in order), using the cache when configured.

        Raises:
            EmbeddingError: naming the URL, when any batch fails; no vector is returned then.
        """
        texts = [self.document_prefix + t for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.warm_up()
        if self._cache is None:
            return self._embed(texts)
        vectors, hits = self._cache.embed(texts, self._embed)
        self.cache_hits += hits
        return vectors

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Vectors for many queries, batched like documents."""
        if not queries:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._embed([self.query_prefix + q for q in queries])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def run(self, chunks: list[Chunk]) -> dict[str, Any]:
        """Attach an embedding to every chunk (none is attached when a request fails)."""
        vectors = self.embed_documents([c.text for c in chunks])
        for chunk, vector in zip(chunks, vectors):
            chunk.embedding = vector
        return {"chunks": chunks}

    # -- requests ------------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        """All batches, ``max_concurrency`` at a time; the first failure cancels the rest."""
        self.warm_up()
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1 or self.max_concurrency == 1:
            parts = [self._post(batch) for batch in batches]
        else:
            pool = ThreadPoolExecutor(
                max_workers=min(self.max_concurrency, len(batches)),
                thread_name_prefix="ragline-embed-http",
            )
            try:
                futures = [pool.submit(self._post, batch) for batch in batches]
                parts = [future.result() for future in futures]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _body(self, batch: list[str]) -> dict[str, Any]:
        if self.api == "tei":
            return {"inputs": batch, "normalize": self.normalize, "truncate": True}
        if self.api == "kserve":
            tensor = {"name": self.input_name, "shape": [len(batch)], "datatype": "BYTES"}
            body: dict[str, Any] = {"inputs": [{**tensor, "data": batch}]}
            if self.output_name is not None:
                body["outputs"] = [{"name": self.output_name}]
            return body
        return {"model": self.model, "input": batch, "encoding_format": "float"}

    def _post(self, batch: list[str]) -> np.ndarray:
        assert self._client is not None
        response = post_with_retries(
            self._client,
            self.url,
            self._body(batch),
            max_retries=self.max_retries,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            error=EmbeddingError,
        )
        try:
            data = response.json()
        except ValueError:
            raise EmbeddingError(
                f"{self.url} returned HTTP {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}"
            ) from None
        rows = self._rows(data, len(batch))
        try:
            vectors = np.array(rows, dtype=np.float32)
        except (ValueError, TypeError) as err:
            raise EmbeddingError(
                f"{self.url} returned vectors that are not lists of numbers of one length ({err})"
            ) from None
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise EmbeddingError(
                f"{self.url} returned vectors of shape {vectors.shape}, not one list of numbers "
                "per text"
            )
        if not np.isfinite(vectors).all():
            raise EmbeddingError(f"{self.url} returned vectors with NaN or infinite values")
        self._check_dimension(vectors.shape[1])
        return vectors

    def _rows(self, data: Any, expected: int) -> Any:
        """One vector per text, in input order, from any of the wire formats."""
        if self.api == "kserve":
            return self._kserve_rows(data, expected)
        if self.api == "tei":
            rows = data if isinstance(data, list) else None
            shape = "a JSON list of vectors"
        else:
            items = data.get("data") if isinstance(data, dict) else None
            rows = self._openai_rows(items) if isinstance(items, list) else None
            shape = 'an object with a "data" list of {"embedding", "index"}'
        if rows is None:
            raise EmbeddingError(
                f"{self.url} returned JSON that is not {shape}: {str(data)[:200]!r}"
            )
        if len(rows) != expected:
            raise EmbeddingError(
                f"{self.url} returned {len(rows)} vector(s) for {expected} text(s); nothing "
                "was embedded"
            )
        return rows

    def _kserve_rows(self, data: Any, expected: int) -> np.ndarray:
        """The ``[n, dimension]`` output tensor of an Open Inference Protocol answer."""
        outputs = data.get("outputs") if isinstance(data, dict) else None
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise EmbeddingError(
                f"{self.url} returned JSON that is not an inference response with an "
                f'"outputs" list: {str(data)[:200]!r}'
            )
        names = [str(o.get("name")) for o in outputs]
        if self.output_name is not None:
            chosen = [o for o in outputs if o.get("name") == self.output_name]
            if not chosen:
                raise EmbeddingError(
                    f"{self.url} returned no output named {self.output_name!r} (it returned "
                    f"{names}); set output_name to one of them"
                )
        elif len(outputs) != 1:
            raise EmbeddingError(
                f"{self.url} returned {len(outputs)} outputs {names}; set output_name to the one "
                "holding the vectors"
            )
        else:
            chosen = outputs
        tensor = chosen[0]
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        if datatype not in KSERVE_DATATYPES:
            raise EmbeddingError(
                f"{self.url} returned output {tensor.get('name')!r} of datatype {datatype!r}; "
                f"vectors must be one of {', '.join(KSERVE_DATATYPES)}"
            )
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
        ):
            raise EmbeddingError(
                f"{self.url} returned output {tensor.get('name')!r} of shape {shape!r}, not "
                f"[texts, dimension] = [{expected}, d]"
            )
        if shape[0] != expected:
            raise EmbeddingError(
                f"{self.url} returned {shape[0]} vector(s) for {expected} text(s); nothing was "
                "embedded"
            )
        try:  # row-major, flat as the protocol sends it (or nested, as some servers do)
            values = np.asarray(tensor.get("data"), dtype=KSERVE_DATATYPES[datatype]).reshape(-1)
        except (ValueError, TypeError) as err:
            raise EmbeddingError(
                f"{self.url} returned output data that is not a list of numbers ({err})"
            ) from None
        if values.size != shape[0] * shape[1]:
            raise EmbeddingError(
                f"{self.url} returned {values.size} numbers for an output of shape {shape}"
            )
        return values.astype(np.float32).reshape(shape[0], shape[1])

    def _openai_rows(self, items: list[Any]) -> list[Any] | None:
        if not all(isinstance(item, dict) and "embedding" in item for item in items):
            return None
        indices = [item.get("index") for item in items]
        if all(isinstance(i, int) for i in indices):
            if sorted(indices) != list(range(len(items))):
                raise EmbeddingError(
                    f"{self.url} returned indices {sorted(indices)[:10]} that are not "
                    f"0..{len(items) - 1}, one per text"
                )
            items = sorted(items, key=lambda item: item["index"])
        rows = []
        for item in items:
            vector = item["embedding"]
            if isinstance(vector, str):  # encoding_format "base64": little-endian float32
                try:
                    vector = np.frombuffer(base64.b64decode(vector, validate=True), dtype="<f4")
                except ValueError as err:
                    raise EmbeddingError(
                        f"{self.url} returned an embedding string that is not base64 float32 "
                        f"({err})"
                    ) from None
            rows.append(vector)
        return rows

    def _check_dimension(self, dimension: int) -> None:
        expected = self.expected_dimension
        with self._lock:
            if expected is None:
                if self._seen_dimension is None:
                    self._seen_dimension = dimension
                expected = self._seen_dimension
                origin = "the dimension of its earlier vectors"
            else:
                origin = "the configured dimension"
        if dimension != expected:
            raise EmbeddingError(
                f"{self.url} returned vectors of dimension {dimension}, expected {expected} "
                f"({origin}); check that the service runs the model the store was built with"
            )
