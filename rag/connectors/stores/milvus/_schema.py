"""Typed scalar columns and server versions of ``store.milvus`` (see the package docstring).

Metadata keys with one scalar type may get a typed column ``meta_<key>`` with an INVERTED index;
:func:`fits` and :func:`infer_scalar_type` decide which values go there, :class:`MilvusSchema`
creates, reads and checks the collection's fields.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores.milvus._filters import (
    INT64,
    SCALAR_PREFIX,
    filterable_view,
    scalar_column,
)
from rag.core.documents import Chunk
from rag.core.errors import ConfigError

logger = logging.getLogger("rag.connectors.stores.milvus")  # one name for the package

INDEX_TYPES = {"flat": "FLAT", "hnsw": "HNSW", "ivf_flat": "IVF_FLAT"}
METRICS = {"ip": "IP", "l2": "L2", "cosine": "COSINE"}
MAX_ID_LENGTH = 512
MAX_TEXT_LENGTH = 65_535

OLDEST_SERVER = (2, 3, 0)
"""The oldest Milvus server ``store.milvus`` works with (``upsert`` came in 2.3)."""
TYPED_COLUMNS_SERVER = (2, 5, 0)
"""The oldest server with nullable scalar fields, which typed columns need."""

IDS_PER_QUERY = 1_000
ROW_FIELDS = ("id", "vector", "text", "metadata", "filterable")


def load_pymilvus() -> Any:
    """The ``pymilvus`` module, or an error saying what to install."""
    return require("pymilvus", package="pymilvus", extra="milvus", purpose="store.milvus")


SCALAR_TYPES = ("int", "float", "str", "bool")
EXACT_FLOAT_INT = 2**53
TYPE_PROPERTY = "ragline.json_fields"


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
        return isinstance(value, int) and -INT64 <= value < INT64
    if isinstance(value, int):
        return abs(value) <= EXACT_FLOAT_INT
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


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


class MilvusSchema:
    """The collection's fields: the server's version check, the typed columns planned for a
    new collection, read back from an existing one, and the rows written into them.

    A mixin of :class:`~rag.connectors.stores.milvus.MilvusStore`, which holds the attributes
    read here (``client``, ``collection``, ``uri``, ``dimension``, ``scalar_fields``, ...).
    """

    # set by MilvusStore.__init__
    _typed: dict[str, str]
    _json_only: set[str]
    _exists: bool
    _client: Any
    server_version: tuple[int, int, int] | None

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
        version = dotted(self.server_version)
        if self.server_version < OLDEST_SERVER:
            raise ConfigError(
                f"the Milvus server at {self.uri} is version {version}; store.milvus needs "
                f"{dotted(OLDEST_SERVER)} or newer (upsert): upgrade the server, or set uri to "
                "a milvus-lite file such as '.rag/milvus.db'",
                field="uri",
            )
        if not self.compatibility_mode:
            return
        if self.scalar_fields:
            raise ConfigError(
                f"scalar_fields needs a Milvus server {dotted(TYPED_COLUMNS_SERVER)} or newer "
                f"(nullable fields); the server at {self.uri} is version {version}: remove "
                "scalar_fields (filters then read the JSON view) or upgrade the server",
                field="scalar_fields",
            )
        logger.info(
            "Milvus server %s at %s: compatibility mode (no typed columns, filters through the "
            "JSON view without 'exists'); %s or newer gets typed columns",
            version,
            self.uri,
            dotted(TYPED_COLUMNS_SERVER),
        )

    def _check_schema(self) -> None:
        description = self._client.describe_collection(self.collection)
        fields = {f["name"]: f for f in description["fields"]}
        missing = set(ROW_FIELDS) - set(fields)
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
        data_type = load_pymilvus().DataType
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
        self._json_only = set(json.loads(properties.get(TYPE_PROPERTY, "[]")))
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
        pymilvus = load_pymilvus()
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

    def _back_to_json(self, keys: set[str]) -> None:
        """Filter ``keys`` through the JSON view from now on, recorded in the collection
        *before* rows without a typed value are written (so a crash cannot hide them)."""
        self._json_only |= keys
        self.client.alter_collection_properties(
            self.collection, properties={TYPE_PROPERTY: json.dumps(sorted(self._json_only))}
        )
        logger.info(
            "collection '%s': metadata key(s) %s hold values of several types; filtered through "
            "the JSON view from now on",
            self.collection,
            ", ".join(sorted(keys)),
        )
