"""A loopback HTTP server with the part of Pinecone's data-plane REST API that store.pinecone
uses, for the tests: ``POST /vectors/upsert``, ``POST /query``, ``GET /vectors/fetch``,
``POST /vectors/delete``, ``POST /describe_index_stats`` and ``GET /vectors/list``.

It follows Pinecone's documentation where it is explicit, and takes the stricter reading where
it is not, so the connector cannot lean on a lenient guess:

- metadata values are strings, numbers, booleans or lists of strings (no nulls, no nested
  objects, no lists of numbers), at most 40 KB per vector; ids are 1-512 ASCII characters;
- an upsert carries at most 1,000 vectors and 2 MB; ``topK`` is at most 10,000; a fetch or a
  delete names at most 1,000 ids;
- filters: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or``; ``$gt``-style operators take
  numbers only; a list field matches ``$eq``/``$in`` when an element does and ``$ne``/``$nin``
  when none does; a field a vector lacks matches nothing but ``$exists: false`` (Pinecone does
  not document this case, so the connector must not rely on it either way); anything else
  (``$not``, an unknown operator) is a 400 error;
- the index metric is ``dotproduct``.

``fail_next(status, times)`` makes the next requests answer an error status (429, 503, ...), to
test retries; ``requests`` counts what arrived.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

MAX_METADATA_BYTES = 40_960
MAX_UPSERT_VECTORS = 1_000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_TOP_K = 10_000
MAX_IDS = 1_000


class BadRequest(Exception):
    pass


def _match_value(stored: Any, op: str, operand: Any) -> bool:
    values = stored if isinstance(stored, list) else [stored]
    same = [v for v in values if _same_kind(v, operand)]
    if op == "$eq":
        return any(v == operand for v in same)
    if op == "$ne":
        return not any(v == operand for v in same)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise BadRequest(f"{op} takes an array")
        found = any(v == o and _same_kind(v, o) for v in values for o in operand)
        return found if op == "$in" else not found
    if isinstance(operand, bool) or not isinstance(operand, (int, float)):
        raise BadRequest(f"{op} takes a number, got {operand!r}")
    compare = {
        "$gt": lambda a: a > operand,
        "$gte": lambda a: a >= operand,
        "$lt": lambda a: a < operand,
        "$lte": lambda a: a <= operand,
    }[op]
    return any(compare(v) for v in same)


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return isinstance(a, str) and isinstance(b, str)


def matches(flt: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Pinecone's filter language over one vector's metadata (see the module docstring)."""
    if not isinstance(flt, dict) or not flt:
        raise BadRequest("a filter is a non-empty object")
    for key, condition in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise BadRequest(f"{key} takes a non-empty array")
            results = [matches(c, metadata) for c in condition]
            if not (all(results) if key == "$and" else any(results)):
                return False
            continue
        if key.startswith("$"):
            raise BadRequest(f"unsupported operator {key}")
        if not isinstance(condition, dict):
            condition = {"$eq": condition}
        for op, operand in condition.items():
            if op not in ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"):
                raise BadRequest(f"unsupported operator {op}")
            if op == "$exists":
                if (key in metadata) != bool(operand):
                    return False
                continue
            if key not in metadata or not _match_value(metadata[key], op, operand):
                return False
    return True


def _check_metadata(vector_id: str, metadata: dict[str, Any]) -> None:
    for key, value in metadata.items():
        ok = isinstance(value, (str, int, float, bool)) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        if not ok:
            raise BadRequest(
                f"Metadata value for key {key} of vector {vector_id} must be a string, number, "
                "boolean or list of strings"
            )
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise BadRequest(
            f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} "
            "bytes per vector"
        )


class PineconeLikeServer:
    """Serve one index (``dimension``, dotproduct) on 127.0.0.1 in a thread."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}
        self.requests: list[str] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PineconeLikeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    # -- the API -------------------------------------------------------------------------------
    def _ns(self, name: str | None) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        return self.namespaces.setdefault(name or "", {})

    def upsert(self, body: dict[str, Any], size: int) -> dict[str, Any]:
        vectors = body.get("vectors") or []
        if len(vectors) > MAX_UPSERT_VECTORS or size > MAX_REQUEST_BYTES:
            raise BadRequest(f"upsert of {len(vectors)} vectors / {size} bytes is over the limits")
        ready = []
        for vector in vectors:
            vid, values = vector["id"], vector["values"]
            if not vid or len(vid) > 512 or not vid.isascii():
                raise BadRequest(f"bad vector id {vid!r}")
            if len(values) != self.dimension:
                raise BadRequest(
                    f"Vector dimension {len(values)} does not match the dimension of the index "
                    f"{self.dimension}"
                )
            metadata = vector.get("metadata") or {}
            _check_metadata(vid, metadata)
            ready.append((vid, np.asarray(values, dtype=np.float32), metadata))
        ns = self._ns(body.get("namespace"))
        for vid, values, metadata in ready:
            ns[vid] = (values, metadata)
        return {"upsertedCount": len(ready)}

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = int(body["topK"])
        if not 1 <= top_k <= MAX_TOP_K:
            raise BadRequest(f"topK must be between 1 and {MAX_TOP_K}")
        query = np.asarray(body["vector"], dtype=np.float32)
        if query.shape[0] != self.dimension:
            raise BadRequest("query vector dimension does not match the index")
        flt = body.get("filter")
        ns = self._ns(body.get("namespace"))
        rows = [(vid, v, m) for vid, (v, m) in ns.items() if not flt or matches(flt, m)]
        scored = sorted(rows, key=lambda r: (-float(r[1] @ query), r[0]))[:top_k]
        matches_out = []
        for vid, values, metadata in scored:
            match: dict[str, Any] = {"id": vid, "score": float(values @ query)}
            if body.get("includeValues"):
                match["values"] = values.tolist()
            if body.get("includeMetadata"):
                match["metadata"] = metadata
            matches_out.append(match)
        return {"matches": matches_out, "namespace": body.get("namespace") or "", "usage": {}}

    def fetch(self, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = query.get("ids", [])
        if not ids or len(ids) > MAX_IDS:
            raise BadRequest(f"fetch takes 1 to {MAX_IDS} ids")
        namespace = (query.get("namespace") or [""])[0]
        ns = self._ns(namespace)
        vectors = {
            i: {"id": i, "values": ns[i][0].tolist(), "metadata": ns[i][1]} for i in ids if i in ns
        }
        return {"vectors": vectors, "namespace": namespace, "usage": {}}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        ns = self._ns(body.get("namespace"))
        if body.get("deleteAll"):
            ns.clear()
        elif body.get("ids") is not None:
            if len(body["ids"]) > MAX_IDS:
                raise BadRequest(f"delete takes at most {MAX_IDS} ids")
            for i in body["ids"]:
                ns.pop(i, None)
        else:
            raise BadRequest("delete needs ids or deleteAll")  # serverless: no filter deletes
        return {}

    def stats(self) -> dict[str, Any]:
        namespaces = {n: {"vectorCount": len(v)} for n, v in self.namespaces.items() if v}
        return {
            "namespaces": namespaces,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(len(v) for v in self.namespaces.values()),
            "metric": "dotproduct",
            "vectorType": "dense",
        }

    def list_ids(self, query: dict[str, list[str]]) -> dict[str, Any]:
        namespace = (query.get("namespace") or [""])[0]
        prefix = (query.get("prefix") or [""])[0]
        limit = int((query.get("limit") or ["100"])[0])
        after = (query.get("paginationToken") or [""])[0]
        ids = sorted(i for i in self._ns(namespace) if i.startswith(prefix) and i > after)
        page = ids[:limit]
        out: dict[str, Any] = {
            "vectors": [{"id": i} for i in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            out["pagination"] = {"next": page[-1]}
        return out

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(f"{method} {url.path}")
                    failure = server._failures.pop(0) if server._failures else None
                    if failure is not None:
                        self._send(failure, {"error": {"code": failure, "message": "injected"}})
                        return
                    if not self.headers.get("Api-Key"):
                        self._send(401, {"error": {"code": 16, "message": "no API key"}})
                        return
                    try:
                        body = json.loads(raw) if raw else {}
                        query = parse_qs(url.query)
                        route = {
                            ("POST", "/vectors/upsert"): lambda: server.upsert(body, len(raw)),
                            ("POST", "/query"): lambda: server.query(body),
                            ("GET", "/vectors/fetch"): lambda: server.fetch(query),
                            ("POST", "/vectors/delete"): lambda: server.delete(body),
                            ("POST", "/describe_index_stats"): server.stats,
                            ("GET", "/vectors/list"): lambda: server.list_ids(query),
                        }.get((method, url.path))
                        if route is None:
                            self._send(404, {"error": {"code": 5, "message": "not found"}})
                            return
                        self._send(200, route())
                    except BadRequest as err:
                        self._send(400, {"error": {"code": 3, "message": str(err)}})

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


@contextmanager
def pinecone_like_server(dimension: int) -> Iterator[PineconeLikeServer]:
    server = PineconeLikeServer(dimension).start()
    try:
        yield server
    finally:
        server.stop()
