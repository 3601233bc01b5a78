"""``store.milvus``: Milvus, embedded (milvus-lite, a local ``.db`` file) or a server.

``uri`` picks the backend: a local file path ending in ``.db`` runs milvus-lite inside this
process (nothing to install beyond ``ragline[milvus]``); an ``http(s)://`` URI talks to a Milvus
server, authenticated with a token read from an environment variable.

The collection holds one row per chunk::

    id        VARCHAR primary key (the chunk id)
    vector    FLOAT_VECTOR(dimension)
    text      VARCHAR
    metadata  JSON    the chunk's metadata, returned as written
    filterable JSON   a typed view of the metadata that the filter translation queries

Why ``filterable``: ragline's filter grammar (:mod:`rag.core.filters`) says a list matches
``$eq`` when any element does, that ``$gt`` compares numbers with numbers and strings with
strings (booleans are never numbers), and that a missing field matches only ``$ne``/``$nin``/
``$exists: false``. Milvus' JSON expressions compare scalars only and answer *null* for a
missing key, which ``not`` keeps null. So each scalar or list value is also written, split by
type, as lists (``s``/``n``/``b``: strings, numbers, booleans) plus the extremes that the ordering
operators need (``smin``/``smax``/``nmin``/``nmax``), and ``present`` lists the keys that hold a
non-null value. Every comparison of the translation is then two-valued:
``json_contains(filterable["s"]["lang"], "en")`` is false, never null, when ``lang`` is missing.

Every value and key of a filter is escaped (see :func:`milvus_string`) before it reaches the
expression; the tests prove that ``x" or id != "`` cannot widen a query.

Server versions: a server older than :data:`OLDEST_SERVER` is refused on connect. One older than
:data:`TYPED_COLUMNS_SERVER` (2.3 and 2.4, e.g. the ``milvus`` package's standalone 2.3.5) runs in
a compatibility mode: no typed columns (those servers have no nullable fields, and 2.3 no INVERTED
index) and range filters without ``exists`` (2.3's grammar lacks it; a missing JSON key compares
false there, so no guard is needed). Declaring ``scalar_fields`` against such a server is refused.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores._common import (
    apply_write_policy,
    batched,
    check_choice,
    check_k,
    query_vector,
)
from rag.core.component import Component
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError
from rag.core.filters import And, Field, FilterNode, Not, parse_filter
from rag.core.protocols import Filters, WritePolicy
from rag.core.secrets import Secret

INDEX_TYPES = {"flat": "FLAT", "hnsw": "HNSW", "ivf_flat": "IVF_FLAT"}
METRICS = {"ip": "IP", "l2": "L2", "cosine": "COSINE"}
MAX_ID_LENGTH = 512
MAX_TEXT_LENGTH = 65_535
logger = logging.getLogger(__name__)

OLDEST_SERVER = (2, 3, 0)
"""The oldest Milvus server ``store.milvus`` works with (``upsert`` came in 2.3)."""
TYPED_COLUMNS_SERVER = (2, 5, 0)
"""The oldest server with nullable scalar fields, which typed columns need."""

_BATCH_ROWS = 1_000  # rows per insert/upsert call: keeps gRPC messages well under their limit
_IDS_PER_QUERY = 1_000
_ROW_FIELDS = ("id", "vector", "text", "metadata", "filterable")
_QUERY_LIMIT = 16_384  # Milvus' largest offset + limit of one query
# Keys of ``describe_index`` that describe the index rather than set its build parameters.
_INDEX_DESCRIPTION_KEYS = frozenset(
    {
        "index_type",
        "metric_type",
        "field_name",
        "index_name",
        "total_rows",
        "indexed_rows",
        "pending_index_rows",
        "state",
        "params",
    }
)

# milvus-lite runs one in-process server per database file and keeps it (and the file's lock) until
# the process exits. Stores count their users per file so the last ``close()`` stops the server and
# another process can open the file.
_LITE_USERS: dict[str, int] = {}
_LITE_USERS_LOCK = threading.Lock()


def _pending_log(database: Path, collection: str) -> bool:
    """Whether milvus-lite's write-ahead log of ``collection`` holds data (a clean close
    flushes and deletes it)."""
    wal = database / "collections" / collection / "wal"
    try:
        return any(f.is_file() and f.stat().st_size > 0 for f in wal.iterdir())
    except OSError:
        return False


def _lite_acquire(path: str) -> None:
    with _LITE_USERS_LOCK:
        _LITE_USERS[path] = _LITE_USERS.get(path, 0) + 1


def _lite_release(path: str) -> None:
    with _LITE_USERS_LOCK:
        users = _LITE_USERS.get(path, 0) - 1
        if users > 0:
            _LITE_USERS[path] = users
            return
        _LITE_USERS.pop(path, None)
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


def _pymilvus() -> Any:
    return require("pymilvus", package="pymilvus", extra="milvus", purpose="store.milvus")


# -- filter translation -------------------------------------------------------------------------
def milvus_string(value: str) -> str:
    """A Milvus expression string literal for ``value``: quotes and backslashes escaped.

    Milvus' parser accepts raw unicode and control characters inside literals but not ``\\u``
    escapes, so only ``\\``, ``"`` and the usual whitespace escapes are written.

    >>> milvus_string('x" or id != "')
    '"x\\\\" or id != \\\\""'
    """
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def milvus_number(value: int | float) -> str:
    """A Milvus numeric literal (finite numbers only)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"filters cannot compare with {value!r}")
    if isinstance(value, int) and abs(value) < 2**63:
        return str(value)
    return repr(float(value))


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return milvus_string(value)
    return milvus_number(value)


def _kind(value: Any) -> str | None:
    """``s``, ``n`` or ``b`` for a filterable scalar, else ``None``."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n" if not (isinstance(value, float) and not math.isfinite(value)) else None
    if isinstance(value, str):
        return "s"
    return None


def filterable_view(metadata: dict[str, Any]) -> dict[str, Any]:
    """The typed view of ``metadata`` that :func:`to_milvus_expr` queries (see module doc).

    >>> filterable_view({"year": 2020, "tags": ["a", "b"], "gone": None})
    {'present': ['year', 'tags'], 's': {'tags': ['a', 'b']}, 'n': {'year': [2020]}, \
'smin': {'tags': 'a'}, 'smax': {'tags': 'b'}, 'nmin': {'year': 2020}, 'nmax': {'year': 2020}}
    """
    view: dict[str, Any] = {"present": []}
    typed: dict[str, dict[str, list[Any]]] = {"s": {}, "n": {}, "b": {}}
    for key, value in metadata.items():
        if value is None:
            continue
        view["present"].append(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            kind = _kind(item)
            if kind is not None:
                typed[kind].setdefault(key, []).append(item)
    for kind in ("s", "n", "b"):
        if typed[kind]:
            view[kind] = typed[kind]
    for kind in ("s", "n"):
        if typed[kind]:
            view[f"{kind}min"] = {k: min(v) for k, v in typed[kind].items()}
            view[f"{kind}max"] = {k: max(v) for k, v in typed[kind].items()}
    return view


def _path(section: str, key: str) -> str:
    return f"filterable[{milvus_string(section)}][{milvus_string(key)}]"


def _contains(key: str, value: Any) -> str:
    kind = _kind(value)
    if kind is None:
        return "false"
    return f"json_contains({_path(kind, key)}, {_literal(value)})"


def _contains_any(key: str, values: Sequence[Any]) -> str:
    parts = []
    for kind in ("s", "n", "b"):
        of_kind = [v for v in values if _kind(v) == kind]
        if of_kind:
            literals = ", ".join(_literal(v) for v in of_kind)
            parts.append(f"json_contains_any({_path(kind, key)}, [{literals}])")
    if not parts:
        return "false"
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


_ORDER_SECTION = {"$gt": "max", "$gte": "max", "$lt": "min", "$lte": "min"}
_ORDER_OPERATOR = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _field_expr(node: Field, exists: bool = True) -> str:
    if node.op == "$exists":
        present = f'json_contains(filterable["present"], {milvus_string(node.name)})'
        return present if node.value else f"not {present}"
    if node.op == "$eq":
        return _contains(node.name, node.value)
    if node.op == "$ne":
        return f"not {_contains(node.name, node.value)}"
    if node.op == "$in":
        return _contains_any(node.name, node.value)
    if node.op == "$nin":
        return f"not {_contains_any(node.name, node.value)}"
    kind = _kind(node.value)
    if kind not in ("s", "n"):
        return "false"
    path = _path(kind + _ORDER_SECTION[node.op], node.name)
    comparison = f"{path} {_ORDER_OPERATOR[node.op]} {_literal(node.value)}"
    if not exists:  # servers before 2.5: a missing key compares false, never null
        return comparison
    # ``exists`` first: a comparison on a missing key is null, and null must not reach ``not``.
    return f"(exists {path} and {comparison})"


# -- typed scalar fields ------------------------------------------------------------------------
SCALAR_TYPES = ("int", "float", "str", "bool")
SCALAR_PREFIX = "meta_"
"""Typed columns are named ``meta_<key>``, so they never meet ragline's own fields."""
_KIND_OF_TYPE = {"int": "n", "float": "n", "str": "s", "bool": "b"}
_INT64 = 2**63
_EXACT_FLOAT_INT = 2**53
_TYPE_PROPERTY = "ragline.json_fields"


def scalar_column(key: str) -> str | None:
    """The typed column of metadata ``key``, or ``None`` when ``key`` cannot name one.

    >>> scalar_column("year"), scalar_column("we ird")
    ('meta_year', None)
    """
    column = SCALAR_PREFIX + key
    if len(column) > 255 or not column.isascii() or not column.replace("_", "a").isalnum():
        return None
    return column


def fits(value: Any, scalar_type: str) -> bool:
    """Whether ``value`` can be stored in a column of ``scalar_type`` without change.

    >>> fits(2020, "int"), fits(2020.5, "int"), fits(True, "int"), fits(3, "float")
    (True, False, False, True)
    """
    if scalar_type == "bool":
        return isinstance(value, bool)
    if scalar_type == "str":
        return isinstance(value, str) and len(value.encode()) <= MAX_TEXT_LENGTH
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if scalar_type == "int":
        return isinstance(value, int) and -_INT64 <= value < _INT64
    if isinstance(value, int):
        return abs(value) <= _EXACT_FLOAT_INT
    return math.isfinite(value)


def infer_scalar_type(values: Sequence[Any]) -> str | None:
    """The one scalar type all non-null ``values`` fit, or ``None``.

    >>> infer_scalar_type([1, 2, None]), infer_scalar_type([1, 2.5]), infer_scalar_type([1, "a"])
    ('int', 'float', None)
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    for scalar_type in SCALAR_TYPES:
        if all(fits(v, scalar_type) for v in present):
            return scalar_type
    return None


def _int_bound(op: str, value: int | float) -> int | float:
    """An integer bound equivalent to ``op value`` over integers (Milvus truncates floats)."""
    if isinstance(value, int) or abs(value) >= _INT64:
        return value
    if op in ("$gt", "$lte"):
        return math.floor(value)
    return math.ceil(value)


def _typed_field_expr(node: Field, column: str, scalar_type: str) -> str:
    """``node`` over a typed column; every comparison is guarded by ``is not null`` so that a
    ``not`` around it never meets a null (Milvus keeps null through ``not``)."""
    guard = f"{column} is not null"
    if node.op == "$exists":
        return guard if node.value else f"{column} is null"
    kind = _KIND_OF_TYPE[scalar_type]
    if node.op in ("$eq", "$ne", "$in", "$nin"):
        options = node.value if node.op in ("$in", "$nin") else (node.value,)
        same = [v for v in options if _kind(v) == kind]
        if scalar_type == "int":  # 2020.0 is 2020; 2020.5 is no integer (Milvus would cut it)
            same = [int(v) for v in same if float(v).is_integer()]
        if not same:
            positive = "false"
        elif len(same) == 1:
            positive = f"({guard} and {column} == {_literal(same[0])})"
        else:
            positive = f"({guard} and {column} in [{', '.join(_literal(v) for v in same)}])"
        return f"not {positive}" if node.op in ("$ne", "$nin") else positive
    if _kind(node.value) != kind or kind == "b":
        return "false"
    bound = _int_bound(node.op, node.value) if scalar_type == "int" else node.value
    return f"({guard} and {column} {_ORDER_OPERATOR[node.op]} {_literal(bound)})"


def to_milvus_expr(
    node: FilterNode | None, typed: Mapping[str, str] | None = None, *, exists: bool = True
) -> str:
    """Translate a parsed filter into a Milvus boolean expression (``""`` for no filter).

    Args:
        node: The parsed filter.
        typed: Metadata keys stored in typed columns (key -> ``int``/``float``/``str``/``bool``);
            comparisons on them use the column (and its index), the others the JSON view.
        exists: Guard range comparisons with ``exists`` (servers from 2.5, milvus-lite); servers
            before 2.5 lack it and compare a missing key as false.

    Example:
        >>> to_milvus_expr(parse_filter({"lang": "en", "year": {"$gte": 2020}}))
        '(json_contains(filterable["s"]["lang"], "en") and \
(exists filterable["nmax"]["year"] and filterable["nmax"]["year"] >= 2020))'
        >>> to_milvus_expr(parse_filter({"year": {"$ne": 2020}}), {"year": "int"})
        'not (meta_year is not null and meta_year == 2020)'
        >>> to_milvus_expr(parse_filter({"year": {"$lt": 2000}}), exists=False)
        'filterable["nmin"]["year"] < 2000'
    """
    if node is None:
        return ""
    if isinstance(node, Field):
        scalar_type = (typed or {}).get(node.name)
        column = scalar_column(node.name) if scalar_type else None
        if column is not None and scalar_type is not None:
            return _typed_field_expr(node, column, scalar_type)
        return _field_expr(node, exists)
    if isinstance(node, Not):
        return f"not ({to_milvus_expr(node.child, typed, exists=exists)})"
    joiner = " and " if isinstance(node, And) else " or "
    parts = (to_milvus_expr(child, typed, exists=exists) for child in node.children)
    return "(" + joiner.join(parts) + ")"


def parse_server_version(text: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a server's version string, ``None`` when it names none.

    >>> parse_server_version("v2.3.5-lite"), parse_server_version("Compatible with Milvus 2.5")
    ((2, 3, 5), (2, 5, 0))
    """
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if found is None:
        return None
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _ids_expr(ids: Sequence[str]) -> str:
    return "id in [" + ", ".join(milvus_string(i) for i in ids) + "]"


# -- the store ----------------------------------------------------------------------------------
class MilvusStore(Component):
    """Chunks in a Milvus collection: milvus-lite in a local file, or a Milvus server.

    Args:
        uri: A local file ending in ``.db`` (milvus-lite, embedded) or ``http(s)://host:19530``.
        collection: Collection name (letters, digits, underscores).
        dimension: Vector size; taken from the first write when ``None``.
        index: ``flat`` (exact), ``hnsw`` or ``ivf_flat``.
        metric: ``ip`` (inner product; cosine on normalized vectors), ``l2`` or ``cosine``.
        index_params: Build parameters of the index (``{"M": 16, "efConstruction": 200}`` for
            HNSW, ``{"nlist": 128}`` for IVF_FLAT); sensible defaults when ``None``.
        search_params: Search parameters (``{"ef": 128}``, ``{"nprobe": 16}``).
        token: Server token as an environment reference such as ``${MILVUS_TOKEN}``
            (``user:password`` or an API key); never stored in the pipeline file.
        max_text_length: Size of the ``text`` column in bytes (Milvus caps it at 65,535).
        exact_fallback_limit: With ``hnsw``/``ivf_flat``, a filtered search that returns fewer
            than ``k`` hits while more chunks match is redone exactly over the matching chunks
            when at most this many match (approximate indexes can miss selective filters).
        scalar_fields: Metadata keys to store in typed columns with a scalar index
            (``{"year": "int", "lang": "str"}``; types ``int``, ``float``, ``str``, ``bool``):
            filters on them read the column instead of parsing JSON. A chunk whose value does
            not fit the declared type is refused. Keys must be letters, digits, underscores.
        inferred_fields: How many more metadata keys that the first write shows with one
            scalar type get a typed column too (``0``: only ``scalar_fields``). If a later
            chunk holds another type, that key quietly goes back to the JSON view for good.

    Typed columns are fixed when the collection is created (milvus-lite cannot add fields);
    a collection made without them opens as before and filters through the JSON view.

    Example:
        >>> # Writes a milvus-lite file; the store conformance suite covers it.
        >>> import numpy as np
        >>> from rag.core import Chunk
        >>> store = MilvusStore(uri=".rag/milvus.db", collection="demo")  # milvus-lite
        >>> chunk = Chunk.create(text="hello", source_id="a.md", position=0)
        >>> chunk.embedding = np.array([1.0, 0.0], dtype="float32")
        >>> store.write([chunk])  # doctest: +SKIP
        1
        >>> hits = store.search(chunk.embedding, k=1, filters={"source": "a.md"})  # doctest: +SKIP
        >>> hits[0].chunk.text  # doctest: +SKIP
        'hello'
    """

    outputs: dict[str, Any] = {}

    def __init__(
        self,
        *,
        uri: str = "milvus.db",
        collection: str = "ragline",
        dimension: int | None = None,
        index: str = "flat",
        metric: str = "ip",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        token: Secret | None = None,
        max_text_length: int = MAX_TEXT_LENGTH,
        exact_fallback_limit: int = 20_000,
        scalar_fields: dict[str, str] | None = None,
        inferred_fields: int = 16,
    ) -> None:
        check_choice(index.lower(), INDEX_TYPES, "index")
        for key, scalar_type in (scalar_fields or {}).items():
            if scalar_column(str(key)) is None:
                raise ConfigError(
                    f"scalar_fields: {key!r} cannot name a Milvus field; use letters, digits "
                    "and underscores (other keys stay filterable through the JSON view)",
                    field=f"scalar_fields.{key}",
                )
            check_choice(scalar_type, SCALAR_TYPES, f"scalar_fields.{key}")
        if inferred_fields < 0:
            raise ConfigError(
                f"inferred_fields must be 0 or more, got {inferred_fields}", field="inferred_fields"
            )
        check_choice(metric.lower(), METRICS, "metric")
        if not collection or not collection.replace("_", "a").isalnum() or collection[0].isdigit():
            raise ConfigError(
                f"collection {collection!r} must be letters, digits and underscores, not "
                "starting with a digit (for example 'ragline_docs')",
                field="collection",
            )
        if "://" not in uri and not uri.endswith(".db"):
            raise ConfigError(
                f"uri {uri!r} is neither a server URI (http://host:19530) nor a milvus-lite file; "
                "a local file must end in '.db', e.g. '.rag/milvus.db'",
                field="uri",
            )
        self.uri = uri
        self.collection = collection
        self.dimension = dimension
        self.index = index
        self.metric = metric
        self.index_params = index_params
        self.search_params = search_params
        self.token = token
        self.max_text_length = max_text_length
        self.exact_fallback_limit = exact_fallback_limit
        self.scalar_fields = scalar_fields
        self.inferred_fields = inferred_fields
        # Metadata key -> scalar type of the collection's typed columns, and the keys that went
        # back to the JSON view (a later value did not fit); both read from the collection.
        self._typed: dict[str, str] = {}
        self._json_only: set[str] = set()
        self._client: Any = None
        self._lock = threading.RLock()
        self._exists = False
        self._unflushed = False
        self._generation = 0
        # The server's version, read on connect (``None`` for milvus-lite or an unnamed one);
        # servers before TYPED_COLUMNS_SERVER run in the compatibility mode (module doc).
        self.server_version: tuple[int, int, int] | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """Whether ``uri`` is a milvus-lite file (embedded) rather than a server."""
        return "://" not in self.uri

    @property
    def compatibility_mode(self) -> bool:
        """Whether the server predates :data:`TYPED_COLUMNS_SERVER` (no typed columns, no
        ``exists`` in filters); known once connected."""
        return self.server_version is not None and self.server_version < TYPED_COLUMNS_SERVER

    @property
    def concurrent_writers(self) -> bool:
        """Whether several processes may write at once (a server; not a milvus-lite file)."""
        return not self.is_local

    def warm_up(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            pymilvus = _pymilvus()
            kwargs: dict[str, Any] = {}
            if self.is_local:
                require("milvus_lite", package="milvus-lite", extra="milvus", purpose="milvus-lite")
                Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
                uri = str(Path(self.uri).expanduser())
            else:
                uri = self.uri
                if self.token is not None:
                    kwargs["token"] = self.token.resolve()
            # A write-ahead log left on disk means the last process did not close cleanly (or
            # another store in this process has unflushed writes): look for replayed rows then.
            replayed = self.is_local and _pending_log(Path(uri), self.collection)
            self._client = pymilvus.MilvusClient(uri=uri, **kwargs)
            if self.is_local:
                _lite_acquire(uri)
            try:
                if not self.is_local:
                    self._check_server_version()
                self._look_for_collection()
                if self._exists and replayed:
                    self._repair_replayed_rows()
            except Exception:
                self.close()  # the next call starts afresh, and the file's lock is let go
                raise

    def _check_server_version(self) -> None:
        """Read the server's version; refuse one too old, or ``scalar_fields`` on one without
        nullable fields (one line each, naming the version, the oldest that works and the fix)."""
        text = str(self._client.get_server_version())
        self.server_version = parse_server_version(text)
        if self.server_version is None:
            logger.info(
                "Milvus server at %s reports version %r; assuming a current one", self.uri, text
            )
            return
        version = _dotted(self.server_version)
        if self.server_version < OLDEST_SERVER:
            raise ConfigError(
                f"the Milvus server at {self.uri} is version {version}; store.milvus needs "
                f"{_dotted(OLDEST_SERVER)} or newer (upsert): upgrade the server, or set uri to "
                "a milvus-lite file such as '.rag/milvus.db'",
                field="uri",
            )
        if not self.compatibility_mode:
            return
        if self.scalar_fields:
            raise ConfigError(
                f"scalar_fields needs a Milvus server {_dotted(TYPED_COLUMNS_SERVER)} or newer "
                f"(nullable fields); the server at {self.uri} is version {version}: remove "
                "scalar_fields (filters then read the JSON view) or upgrade the server",
                field="scalar_fields",
            )
        logger.info(
            "Milvus server %s at %s: compatibility mode (no typed columns, filters through the "
            "JSON view without 'exists'); %s or newer gets typed columns",
            version,
            self.uri,
            _dotted(TYPED_COLUMNS_SERVER),
        )

    def _forget_cached_schema(self) -> None:
        """Drop pymilvus's cached schema of this collection.

        pymilvus caches schemas per server address and collection name, and ``create_collection``
        does not refresh that cache. milvus-lite servers listen on random ports, so a server
        started later can get the address of one that is gone; a collection of the same name
        but other typed columns would then be written with the old schema ("record has fields
        ... not in schema").
        """
        connection = getattr(self._client, "_get_connection", lambda: None)()
        invalidate = getattr(connection, "_invalidate_schema", None)
        if invalidate is not None:
            invalidate(self.collection)

    def _look_for_collection(self) -> None:
        """Open the collection if it exists (on a server, another process may have made it)."""
        self._forget_cached_schema()
        self._exists = bool(self._client.has_collection(self.collection))
        if self._exists:
            self._check_schema()
            try:
                self._client.load_collection(self.collection)
            except _pymilvus().MilvusException as err:
                if not self.is_local:
                    raise
                self._rebuild_indexes(err)

    def _rebuild_indexes(self, load_error: Exception) -> None:
        """Drop and rebuild every index of a milvus-lite collection that failed to load.

        milvus-lite 3.x writes its index files (derived from the stored rows) in place, so a
        process killed while writing one leaves a truncated file that every later load refuses
        ("File is too small: 0"). The rows are intact; rebuilding the indexes from them repairs
        the collection without losing anything.
        """
        client = self._client
        described = [
            client.describe_index(self.collection, name)
            for name in client.list_indexes(self.collection)
        ]
        logger.warning(
            "milvus-lite could not load collection %r of %s (%s); rebuilding its %d index(es) "
            "from the stored rows",
            self.collection,
            self.uri,
            load_error,
            len(described),
        )
        index_params = client.prepare_index_params()
        for index in described:
            # milvus-lite may drop every index of the collection on the first call
            if index["index_name"] in client.list_indexes(self.collection):
                client.drop_index(self.collection, index["index_name"])
            params = {k: v for k, v in index.items() if k not in _INDEX_DESCRIPTION_KEYS}
            if index["field_name"] == "vector" and not params:
                # milvus-lite does not describe build parameters: use this store's
                params = self.index_params or self._default_index_params()
            metric = index.get("metric_type")
            index_params.add_index(
                field_name=index["field_name"],
                index_type=index["index_type"],
                index_name=index["index_name"],
                **({"metric_type": metric} if metric and metric != "NONE" else {}),
                **({"params": params} if params else {}),
            )
        client.create_index(self.collection, index_params)
        try:
            client.load_collection(self.collection)
        except _pymilvus().MilvusException as err:
            raise ConfigError(
                f"milvus-lite cannot load collection {self.collection!r} of {self.uri} even "
                f"after rebuilding its indexes ({err}); the file is damaged: ingest again into "
                "a new uri (rag ingest --mode full)"
            ) from load_error

    def _repair_replayed_rows(self) -> None:
        """Keep one row per id after milvus-lite replayed a log it had already flushed.

        milvus-lite 3.x can return every row of a flush twice when its process was killed after
        the flush was committed but before its write-ahead log was deleted (the log is replayed
        on the next open, and queries do not merge the two copies). Chunk ids are content
        hashes, so the copies are equal: delete the id (both copies) and insert one back.
        """
        copies = Counter(chunk.id for chunk in self._iterate("", ["id"]))
        repeated = sorted(i for i, n in copies.items() if n > 1)
        if not repeated:
            return
        fields = [*_ROW_FIELDS, *(SCALAR_PREFIX + key for key in self._typed)]
        for part in batched(repeated, _IDS_PER_QUERY):
            rows = self._client.query(
                self.collection,
                filter=_ids_expr(part),
                output_fields=fields,
                limit=sum(copies[i] for i in part),
            )
            one = {row["id"]: {k: row.get(k) for k in fields} for row in rows}
            self._client.delete(self.collection, ids=part)
            self._client.insert(self.collection, list(one.values()))
        self._client.flush(self.collection)
        logger.warning(
            "milvus-lite %s: %d chunk(s) were stored twice after an interrupted flush; kept one "
            "copy of each",
            self.uri,
            len(repeated),
        )

    def _check_schema(self) -> None:
        description = self._client.describe_collection(self.collection)
        fields = {f["name"]: f for f in description["fields"]}
        missing = set(_ROW_FIELDS) - set(fields)
        if missing:
            raise ConfigError(
                f"collection '{self.collection}' at {self.uri} was not created by ragline "
                f"(no field(s) {', '.join(sorted(missing))}); use another collection name",
                field="collection",
            )
        stored = int(fields["vector"]["params"]["dim"])
        if self.dimension is not None and stored != self.dimension:
            raise ConfigError(
                f"collection '{self.collection}' holds {stored}-dimensional vectors but "
                f"dimension={self.dimension} was configured; use another collection or the "
                "matching embedder",
                field="dimension",
            )
        self.dimension = stored
        self._read_typed_fields(description, fields)

    def _read_typed_fields(self, description: dict[str, Any], fields: dict[str, Any]) -> None:
        """Learn the typed columns of an existing collection (none if made before them)."""
        data_type = _pymilvus().DataType
        names = {
            data_type.INT64: "int",
            data_type.DOUBLE: "float",
            data_type.VARCHAR: "str",
            data_type.BOOL: "bool",
        }
        self._typed = {
            name[len(SCALAR_PREFIX) :]: names[field["type"]]
            for name, field in fields.items()
            if name.startswith(SCALAR_PREFIX) and field["type"] in names
        }
        properties = description.get("properties") or {}
        self._json_only = set(json.loads(properties.get(_TYPE_PROPERTY, "[]")))
        for key, scalar_type in (self.scalar_fields or {}).items():
            if self._typed.get(key) != scalar_type:
                logger.warning(
                    "collection '%s' at %s has no %s column for metadata key '%s' (it was "
                    "created without it); filters on it use the JSON view. Write into a new "
                    "collection to get the typed column.",
                    self.collection,
                    self.uri,
                    scalar_type,
                    key,
                )

    def _filter_types(self) -> dict[str, str]:
        """Keys whose filters may read the typed column."""
        return {k: t for k, t in self._typed.items() if k not in self._json_only}

    def _expr(self, node: FilterNode | None) -> str:
        return to_milvus_expr(node, self._filter_types(), exists=not self.compatibility_mode)

    @property
    def client(self) -> Any:
        """The ``pymilvus.MilvusClient`` (connected on first use)."""
        if self._client is None:
            self.warm_up()
        return self._client

    def _default_index_params(self) -> dict[str, Any]:
        kind = self.index.lower()
        if kind == "hnsw":
            return {"M": 16, "efConstruction": 200}
        if kind == "ivf_flat":
            return {"nlist": 128}
        return {}

    def _search_params(self, k: int) -> dict[str, Any]:
        params = dict(self.search_params or {})
        kind = self.index.lower()
        if kind == "hnsw":
            params["ef"] = max(int(params.get("ef", 128)), k)  # Milvus wants ef >= k
        elif kind == "ivf_flat":
            params.setdefault("nprobe", 16)
        return {"metric_type": METRICS[self.metric.lower()], "params": params}

    def _plan_typed_fields(self, chunks: Sequence[Chunk]) -> dict[str, str]:
        """Declared fields, then up to ``inferred_fields`` keys of ``chunks`` seen with one
        scalar type, in order of first appearance."""
        if self.compatibility_mode:
            return {}  # no nullable fields on the server (scalar_fields was refused on connect)
        typed = dict(self.scalar_fields or {})
        values: dict[str, list[Any]] = {}
        for chunk in chunks:
            for key, value in chunk.metadata.items():
                values.setdefault(key, []).append(value)
        inferred = 0
        for key, seen in values.items():
            if inferred >= self.inferred_fields:
                break
            if key in typed or scalar_column(key) is None:
                continue
            scalar_type = infer_scalar_type(seen)
            if scalar_type is not None:
                typed[key] = scalar_type
                inferred += 1
        return typed

    def _create_collection(self, dimension: int, typed: dict[str, str]) -> None:
        pymilvus = _pymilvus()
        data_type = pymilvus.DataType
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", data_type.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field("vector", data_type.FLOAT_VECTOR, dim=dimension)
        schema.add_field("text", data_type.VARCHAR, max_length=self.max_text_length)
        schema.add_field("metadata", data_type.JSON)
        schema.add_field("filterable", data_type.JSON)
        index_params = self.client.prepare_index_params()
        index_params.add_index(
            field_name="vector",
            index_type=INDEX_TYPES[self.index.lower()],
            metric_type=METRICS[self.metric.lower()],
            params=self.index_params or self._default_index_params(),
        )
        types = {
            "int": data_type.INT64,
            "float": data_type.DOUBLE,
            "str": data_type.VARCHAR,
            "bool": data_type.BOOL,
        }
        for key, scalar_type in typed.items():
            column = SCALAR_PREFIX + key
            extra = {"max_length": MAX_TEXT_LENGTH} if scalar_type == "str" else {}
            schema.add_field(column, types[scalar_type], nullable=True, **extra)
            # INVERTED is the scalar index both milvus-lite and the server build.
            index_params.add_index(field_name=column, index_type="INVERTED")
        self.client.create_collection(
            self.collection,
            schema=schema,
            index_params=index_params,
            consistency_level="Strong",
        )
        self._forget_cached_schema()
        self.dimension = dimension
        self._exists = True
        self._typed = dict(typed)
        self._json_only = set()

    # -- writing ------------------------------------------------------------------------------
    def _rows(
        self, chunks: Sequence[Chunk], typed: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """Rows to insert, and the inferred typed keys that a value here does not fit."""
        missing = [c.id for c in chunks if c.embedding is None]
        if missing:
            raise ValueError(
                f"{len(missing)} chunk(s) have no embedding (first: {missing[0]}); run an "
                "embedder before writing to a vector store"
            )
        rows = []
        misfits: set[str] = set()
        for chunk in chunks:
            vector = np.asarray(chunk.embedding, dtype=np.float32).reshape(-1)
            if self.dimension is not None and vector.shape[0] != self.dimension:
                raise ValueError(
                    f"chunk {chunk.id} has a {vector.shape[0]}-dimensional vector but the "
                    f"collection holds dimension {self.dimension}; use the same embedder for "
                    "every write"
                )
            if len(chunk.id.encode()) > MAX_ID_LENGTH:
                raise ValueError(f"chunk id {chunk.id[:40]!r}... is over {MAX_ID_LENGTH} bytes")
            if len(chunk.text.encode()) > self.max_text_length:
                raise ValueError(
                    f"chunk {chunk.id} has {len(chunk.text.encode())} bytes of text, over the "
                    f"collection's max_text_length={self.max_text_length}; split it smaller"
                )
            row = {
                "id": chunk.id,
                "vector": vector.tolist(),
                "text": chunk.text,
                "metadata": chunk.metadata,
                "filterable": filterable_view(chunk.metadata),
            }
            for key, scalar_type in typed.items():
                value = chunk.metadata.get(key)
                if value is not None and (key in self._json_only or not fits(value, scalar_type)):
                    if key not in self._json_only:
                        if (self.scalar_fields or {}).get(key) == scalar_type:
                            raise ValueError(
                                f"chunk {chunk.id} has metadata {key}={value!r}, which is not "
                                f"a {scalar_type} as scalar_fields declares; fix the metadata "
                                "or declare another type in a new collection"
                            )
                        misfits.add(key)
                    value = None
                elif scalar_type == "float" and value is not None:
                    value = float(value)
                row[SCALAR_PREFIX + key] = value
            rows.append(row)
        return rows, misfits

    def _existing(self, ids: Sequence[str]) -> set[str]:
        if not self._exists or not ids:
            return set()
        self._flush_if_needed()
        found: set[str] = set()
        for part in batched(ids, _IDS_PER_QUERY):
            rows = self.client.query(
                self.collection, filter=_ids_expr(part), output_fields=["id"], limit=len(part)
            )
            found.update(row["id"] for row in rows)
        return found

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding). Returns how many were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        with self._lock:
            self.warm_up()
            if not self._exists and not self.is_local:
                self._look_for_collection()
            dimensions = {np.asarray(c.embedding).size for c in chunks if c.embedding is not None}
            if self.dimension is None and not self._exists:
                if len(dimensions) > 1:
                    raise ValueError(
                        f"chunk vectors have different dimensions {sorted(dimensions)}; use the "
                        "same embedder for every chunk"
                    )
                self.dimension = dimensions.pop() if dimensions else None
            typed = self._typed if self._exists else self._plan_typed_fields(chunks)
            rows, misfits = self._rows(chunks, typed)
            unique = {row["id"]: row for row in rows}  # the last one wins inside a batch
            unique = apply_write_policy(unique, policy, self._existing)
            if not unique:
                return 0
            if not self._exists:
                self._create_collection(int(self.dimension or 0), typed)
            if misfits:
                self._back_to_json(misfits)
            batch = list(unique.values())
            for start in range(0, len(batch), _BATCH_ROWS):
                self.client.upsert(self.collection, batch[start : start + _BATCH_ROWS])
            self._changed()
            return len(batch)

    def _back_to_json(self, keys: set[str]) -> None:
        """Filter ``keys`` through the JSON view from now on, recorded in the collection
        *before* rows without a typed value are written (so a crash cannot hide them)."""
        self._json_only |= keys
        self.client.alter_collection_properties(
            self.collection, properties={_TYPE_PROPERTY: json.dumps(sorted(self._json_only))}
        )
        logger.info(
            "collection '%s': metadata key(s) %s hold values of several types; filtered through "
            "the JSON view from now on",
            self.collection,
            ", ".join(sorted(keys)),
        )

    def _changed(self) -> None:
        self._unflushed = True
        self._generation += 1

    def _flush_if_needed(self) -> None:
        # milvus-lite answers ~10x faster from flushed segments, so flush once after writes,
        # before the next read, rather than after every batch of an ingestion run.
        if self._unflushed and self.is_local:
            self.client.flush(self.collection)
        self._unflushed = False

    def flush(self) -> None:
        """Seal what was written so searches read indexed segments (and the file is current)."""
        with self._lock:
            if self._client is not None and self._exists:
                self.client.flush(self.collection)
            self._unflushed = False

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        if ids is None and filters is None:
            raise ValueError("delete() needs ids or filters; to empty the store use clear()")
        node = parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            if ids is not None:
                doomed = self._existing(list(ids))
                if node is not None and doomed:
                    doomed = set(self._ids_matching(self._expr(node), sorted(doomed)))
            else:
                doomed = set(self._ids_matching(self._expr(node), None))
            if not doomed:
                return 0
            for part in batched(sorted(doomed), _IDS_PER_QUERY):
                self.client.delete(self.collection, ids=part)
            self._changed()
            return len(doomed)

    def _ids_matching(self, expr: str, within: Sequence[str] | None) -> list[str]:
        self._flush_if_needed()
        if within is not None:
            found: list[str] = []
            for part in batched(within, _IDS_PER_QUERY):
                full = f"({_ids_expr(part)}) and ({expr})" if expr else _ids_expr(part)
                rows = self.client.query(
                    self.collection, filter=full, output_fields=["id"], limit=len(part)
                )
                found.extend(row["id"] for row in rows)
            return found
        return [c.id for c in self._iterate(expr, ["id"])]

    def clear(self) -> None:
        """Delete every chunk (the collection and its schema stay)."""
        with self._lock:
            ids = self.ids()
            if ids:
                self.delete(ids=ids)

    def close(self) -> None:
        """Flush and disconnect."""
        with self._lock:
            if self._client is None:
                return
            if self._unflushed and self._exists:
                self.client.flush(self.collection)
            self._client.close()
            self._client = None
            self._exists = False
            self._unflushed = False
            if self.is_local:
                _lite_release(str(Path(self.uri).expanduser()))

    # -- reading ------------------------------------------------------------------------------
    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` nearest chunks among those matching ``filters`` (best first)."""
        node = parse_filter(filters)
        check_k(k)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            query = query_vector(vector, self.dimension)
            self._flush_if_needed()
            expr = self._expr(node)
            limit = min(k, _QUERY_LIMIT)
            results = self.client.search(
                self.collection,
                data=[query.tolist()],
                limit=limit,
                filter=expr,
                output_fields=["text", "metadata"],
                search_params=self._search_params(limit),
            )
            hits = []
            for result in results[0]:
                entity = result["entity"]
                chunk = Chunk(id=result["id"], text=entity["text"], metadata=entity["metadata"])
                hits.append(Hit(chunk, self._score(float(result["distance"]))))
            if expr and len(hits) < limit and self.index.lower() != "flat":
                # A graph or cluster index can miss matches of a selective filter (milvus-lite
                # has no brute-force fallback); rank the matching chunks exactly when few.
                matching = self.count(filters)
                if len(hits) < matching <= self.exact_fallback_limit:
                    hits = self._exact_search(query, expr, limit)
            return hits

    def _score(self, distance: float) -> float:
        return -distance if self.metric.lower() == "l2" else distance

    def _exact_search(self, query: np.ndarray, expr: str, k: int) -> list[Hit]:
        rows = []
        iterator = self.client.query_iterator(
            self.collection,
            batch_size=1000,
            filter=expr,
            output_fields=["id", "text", "metadata", "vector"],
        )
        try:
            while batch := iterator.next():
                rows.extend(batch)
        finally:
            iterator.close()
        if not rows:
            return []
        vectors = np.asarray([row["vector"] for row in rows], dtype=np.float32)
        metric = self.metric.lower()
        if metric == "l2":
            diff = vectors - query
            distances = np.einsum("ij,ij->i", diff, diff)  # no BLAS threads (see faiss.py)
            scores = -distances
        else:
            if metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
                vectors = vectors / np.where(norms == 0, 1.0, norms)[:, None]
            scores = np.einsum("ij,j->i", vectors, query)
            distances = scores
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(
                Chunk(id=rows[i]["id"], text=rows[i]["text"], metadata=rows[i]["metadata"]),
                self._score(float(distances[i])),
            )
            for i in order
        ]

    def count(self, filters: Filters | None = None) -> int:
        node = parse_filter(filters)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            self._flush_if_needed()
            rows = self.client.query(
                self.collection, filter=self._expr(node), output_fields=["count(*)"]
            )
            return int(rows[0]["count(*)"])

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            self.warm_up()
            if not self._exists or not ids:
                return []
            self._flush_if_needed()
            id_list = list(ids)
            found: dict[str, Chunk] = {}
            for part in batched(id_list, _IDS_PER_QUERY):
                rows = self.client.query(
                    self.collection,
                    filter=_ids_expr(part),
                    output_fields=["id", "text", "metadata", "vector"],
                    limit=len(part),
                )
                for row in rows:
                    found[row["id"]] = Chunk(
                        id=row["id"],
                        text=row["text"],
                        metadata=row["metadata"],
                        embedding=np.asarray(row["vector"], dtype=np.float32),
                    )
            return [found[i] for i in id_list if i in found]

    def _iterate(self, expr: str, fields: list[str], batch_size: int = 1000) -> Iterator[Chunk]:
        iterator = self.client.query_iterator(
            self.collection, batch_size=batch_size, filter=expr, output_fields=fields
        )
        try:
            while True:
                rows = iterator.next()
                if not rows:
                    return
                for row in rows:
                    yield Chunk(
                        id=row["id"], text=row.get("text", ""), metadata=row.get("metadata", {})
                    )
        finally:
            iterator.close()

    def ids(self) -> list[str]:
        """Every stored chunk id."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            self._flush_if_needed()
            return [c.id for c in self._iterate("", ["id"])]

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[Chunk]:
        """Every stored chunk (without embedding)."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return iter(())
            self._flush_if_needed()
            return self._iterate("", ["id", "text", "metadata"], batch_size)

    def fingerprint(self) -> str:
        """Changes when this store object writes or deletes (see the BM25 retriever).

        Milvus keeps no content version, so writes by another process are seen only through
        the count; a restarted process starts a new fingerprint.
        """
        return f"milvus:{id(self)}:{self._generation}:{self.count()}"

    def stats(self) -> dict[str, Any]:
        """``{"chunks", "sources", "dimension"}``."""
        with self._lock:
            sources = {c.metadata.get("source") for c in self.iter_chunks()}
            return {
                "chunks": self.count(),
                "sources": len(sources - {None}),
                "dimension": self.dimension,
            }

    def run(self) -> dict[str, Any]:  # a store is shared by reference, not run as a node
        return {}
