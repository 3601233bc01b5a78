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

The package: :mod:`._store` (:class:`MilvusStore`: connection, writes, reads), :mod:`._filters`
(the filter translation), :mod:`._schema` (typed scalar columns, server versions) and
:mod:`._lite` (milvus-lite's per-file server and the repairs after a killed process).
"""

from __future__ import annotations

from rag.connectors.stores.milvus._filters import (
    SCALAR_PREFIX,
    filterable_view,
    milvus_number,
    milvus_string,
    scalar_column,
    to_milvus_expr,
)
from rag.connectors.stores.milvus._schema import (
    INDEX_TYPES,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    METRICS,
    OLDEST_SERVER,
    SCALAR_TYPES,
    TYPED_COLUMNS_SERVER,
    fits,
    infer_scalar_type,
    parse_server_version,
)
from rag.connectors.stores.milvus._store import MilvusStore

# The class's public home: the registry's entry point ("rag.connectors.stores.milvus:MilvusStore"),
# pickles (Ray writers) and messages name this path, not the private module that defines it.
MilvusStore.__module__ = __name__

__all__ = [
    "INDEX_TYPES",
    "MAX_ID_LENGTH",
    "MAX_TEXT_LENGTH",
    "METRICS",
    "OLDEST_SERVER",
    "SCALAR_PREFIX",
    "SCALAR_TYPES",
    "TYPED_COLUMNS_SERVER",
    "MilvusStore",
    "filterable_view",
    "fits",
    "infer_scalar_type",
    "milvus_number",
    "milvus_string",
    "parse_server_version",
    "scalar_column",
    "to_milvus_expr",
]
