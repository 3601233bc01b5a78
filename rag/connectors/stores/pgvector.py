"""``store.pgvector``: chunks in a PostgreSQL table with the pgvector extension.

One table per collection (``table``, in ``schema``)::

    id         text primary key       the chunk id
    embedding  vector(dimension)      HNSW or IVFFlat index (or none: ``index="flat"``, exact)
    text       text                   the chunk text
    metadata   jsonb                  the metadata as written; a GIN index serves ``@>``

Filters (:mod:`rag.core.filters`) become SQL over the ``metadata`` column in one place,
:func:`to_sql`, and every key and value travels as a bound parameter, never inside the SQL text:

- ``$eq`` is JSONB containment, ``metadata @> {"k": v}`` or ``metadata @> {"k": [v]}`` (a list
  matches when any element does; JSONB keeps ``true`` apart from ``1`` and ``"2020"`` apart from
  ``2020``, as the grammar wants);
- ``$gt``-style comparisons are a fixed SQL/JSON path, ``$[*] ? (@ > $x)``, run on
  ``metadata -> k`` with ``x`` passed as a variable: a number is compared only with numbers and a
  string only with strings;
- ``$exists`` is ``jsonb_typeof(metadata -> k)`` not null; ``$ne``, ``$nin``, ``$not`` are SQL
  ``NOT`` over expressions that are never SQL ``NULL``, so a missing field matches exactly
  ``$ne``, ``$nin`` and ``$exists: false``.

An approximate index can miss matches of a selective filter: searches use pgvector's iterative
index scans (0.8+), and a filtered search that still returns fewer than ``k`` hits while more
chunks match is redone exactly (index scans switched off for that one transaction).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.connectors.stores._base import StoreBase, WritesThrough
from rag.connectors.stores._common import (
    apply_write_policy,
    batched,
    check_choice,
    check_delete_arguments,
    check_k,
    chunk_vectors,
    query_vector,
)
from rag.connectors.stores._pgvector_filters import jsonb, to_sql
from rag.core.documents import Chunk, Hit
from rag.core.errors import ConfigError, StoreUnavailableError
from rag.core.filters import FilterNode, parse_filter
from rag.core.protocols import Filters, WritePolicy
from rag.core.secrets import Secret

__all__ = [
    "INDEX_TYPES",
    "METRICS",
    "PgvectorStore",
    "display_url",
    "to_sql",
]

INDEX_TYPES = ("flat", "hnsw", "ivfflat")
#: metric -> (distance operator, operator class)
METRICS = {
    "ip": ("<#>", "vector_ip_ops"),
    "l2": ("<->", "vector_l2_ops"),
    "cosine": ("<=>", "vector_cosine_ops"),
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_COLUMNS = {"id", "embedding", "text", "metadata"}
_ROWS_PER_STATEMENT = 1_000
_IDS_PER_QUERY = 1_000
_MAX_EF_SEARCH = 1_000  # pgvector's limit for hnsw.ef_search


def _psycopg() -> Any:
    return require("psycopg", package="psycopg[binary]", extra="pgvector", purpose="store.pgvector")


def _sql() -> Any:
    return _psycopg().sql


# -- values and messages ------------------------------------------------------------------------


def _array(value: Any) -> np.ndarray:
    """A pgvector value (``pgvector.Vector`` or a sequence) as a float32 array."""
    from pgvector import Vector

    return np.asarray(value.to_numpy() if isinstance(value, Vector) else value, dtype=np.float32)


def display_url(url: str) -> str:
    """``url`` without its password, for messages (``postgresql://user@host:port/db``)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:  # not parseable: show nothing that could be a secret
        return "<unparseable url>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


# -- the store ----------------------------------------------------------------------------------
class PgvectorStore(WritesThrough, StoreBase):
    """Chunks in a PostgreSQL table with a pgvector column.

    Args:
        url: libpq connection string or URI, such as ``postgresql://user@host:5432/db``. Leave
            the password out: it comes from ``password`` or libpq's own ``PGPASSWORD``.
        table: Table name (letters, digits, underscores); created on the first write.
        schema: Schema of the table.
        dimension: Vector size; taken from the first write (or the existing table) when ``None``.
        index: ``hnsw`` (default), ``ivfflat`` or ``flat`` (no vector index: exact scans).
        metric: ``ip`` (inner product; cosine on normalized vectors), ``l2`` or ``cosine``.
        hnsw_m: HNSW graph degree (``m``).
        ef_construction: HNSW build effort.
        ef_search: HNSW search effort (raised to ``k`` per query, up to pgvector's 1000).
        ivf_lists: IVFFlat lists (build the index after loading data for good recall).
        ivf_probes: IVFFlat lists searched per query.
        password: Password as an environment reference such as ``${PGPASSWORD}``.
        connect_timeout: Seconds to wait for the server before giving up.
        create_extension: Run ``CREATE EXTENSION IF NOT EXISTS vector`` on connect (needs a
            role allowed to; turn off where a DBA installs the extension).

    Example:
        >>> # Needs a PostgreSQL server with pgvector.
        >>> import numpy as np
        >>> from rag.core import Chunk
        >>> store = PgvectorStore(url="postgresql://rag@127.0.0.1:5432/rag", table="docs")
        >>> chunk = Chunk.create(text="hello", source_id="a.md", position=0)
        >>> chunk.embedding = np.array([1.0, 0.0], dtype="float32")
        >>> store.write([chunk])  # doctest: +SKIP
        1
        >>> store.search(chunk.embedding, k=1, filters={"source": "a.md"})[0].chunk.text
        ... # doctest: +SKIP
        'hello'
    """

    #: Several processes may write at once: PostgreSQL is a server.
    concurrent_writers = True

    def __init__(
        self,
        *,
        url: str = "postgresql://localhost:5432/postgres",
        table: str = "ragline_chunks",
        schema: str = "public",
        dimension: int | None = None,
        index: str = "hnsw",
        metric: str = "ip",
        hnsw_m: int = 16,
        ef_construction: int = 64,
        ef_search: int = 100,
        ivf_lists: int = 100,
        ivf_probes: int = 10,
        password: Secret | None = None,
        connect_timeout: int = 10,
        create_extension: bool = True,
    ) -> None:
        check_choice(index, INDEX_TYPES, "index")
        check_choice(metric, METRICS, "metric")
        for field, value in (("table", table), ("schema", schema)):
            if not _IDENTIFIER.fullmatch(value):
                raise ConfigError(
                    f"{field} {value!r} must be letters, digits and underscores (at most 63, "
                    "not starting with a digit), e.g. 'ragline_docs'",
                    field=field,
                )
        if "://" in url and not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                f"url {url!r} must be a PostgreSQL URI (postgresql://user@host:5432/db) or a "
                "libpq connection string ('host=... dbname=...')",
                field="url",
            )
        self.url = url
        self.table = table
        self.schema = schema
        self.dimension = dimension
        self.index = index
        self.metric = metric
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ivf_lists = ivf_lists
        self.ivf_probes = ivf_probes
        self.password = password
        self.connect_timeout = connect_timeout
        self.create_extension = create_extension
        self._conn: Any = None
        self._exists = False
        self._iterative_scan = False
        super().__init__()

    # -- connection ---------------------------------------------------------------------------
    def _is_open(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def _open(self) -> None:
        psycopg = _psycopg()
        register = require(
            "pgvector.psycopg", package="pgvector", extra="pgvector", purpose="store.pgvector"
        ).register_vector
        kwargs: dict[str, Any] = {"connect_timeout": self.connect_timeout}
        if self.password is not None:
            kwargs["password"] = self.password.resolve()
        try:
            conn = psycopg.connect(self.url, autocommit=True, **kwargs)
        except psycopg.OperationalError as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            reason = lines[0].rstrip(".") if lines else type(err).__name__
            raise StoreUnavailableError(
                "store.pgvector", display_url(self.url), "url", reason
            ) from None
        try:
            self._prepare(conn, register)
        except Exception:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: Any, register: Any) -> None:
        psycopg = _psycopg()
        if self.create_extension:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as err:
                raise ConfigError(
                    f"cannot enable the pgvector extension in {display_url(self.url)}: "
                    f"{str(err).strip().splitlines()[0]}. Install pgvector on the server "
                    "(scripts/install_postgres.sh does on Debian) and run 'CREATE EXTENSION "
                    "vector' as a superuser, then set create_extension: false",
                    field="create_extension",
                ) from None
        try:
            register(conn)
        except psycopg.ProgrammingError:
            raise ConfigError(
                f"the pgvector extension is not enabled in {display_url(self.url)}; run "
                "'CREATE EXTENSION vector' there (or set create_extension: true)",
                field="create_extension",
            ) from None
        version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        numbers = tuple(int(p) for p in re.findall(r"\d+", version[0] if version else "0"))
        self._iterative_scan = numbers >= (0, 8)
        self._read_table(conn)

    def _qualified(self) -> Any:
        return _sql().Identifier(self.schema, self.table)

    def _read_table(self, conn: Any) -> None:
        name = f'"{self.schema}"."{self.table}"'
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            [name],
        ).fetchall()
        if not rows:
            self._exists = False
            return
        columns = dict(rows)
        if not set(columns) >= _COLUMNS:
            raise ConfigError(
                f"table {self.schema}.{self.table} in {display_url(self.url)} was not created by "
                f"ragline (it lacks column(s) {', '.join(sorted(_COLUMNS - set(columns)))}); "
                "use another table name",
                field="table",
            )
        match = re.fullmatch(r"vector\((\d+)\)", columns["embedding"])
        if match:
            stored = int(match.group(1))
            if self.dimension is not None and stored != self.dimension:
                raise ConfigError(
                    f"table {self.schema}.{self.table} holds {stored}-dimensional vectors but "
                    f"dimension={self.dimension} was configured; use another table or the "
                    "matching embedder",
                    field="dimension",
                )
            self.dimension = stored
        self._exists = True

    @property
    def connection(self) -> Any:
        """The ``psycopg.Connection`` (opened on first use)."""
        self.warm_up()
        return self._conn

    def _create_table(self, dimension: int) -> None:
        sql = _sql()
        conn = self._conn
        operator_class = sql.SQL(METRICS[self.metric][1])
        table = self._qualified()
        # One creator at a time when several processes write their first batch together.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{self.schema}.{self.table}"])
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, embedding vector({}) "
                "NOT NULL, text text NOT NULL, metadata jsonb NOT NULL)"
            ).format(table, sql.Literal(int(dimension)))
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING gin (metadata jsonb_path_ops)"
            ).format(sql.Identifier(f"{self.table}_metadata_idx"), table)
        )
        if self.index != "flat":
            options = (
                sql.SQL("m = {}, ef_construction = {}").format(
                    sql.Literal(int(self.hnsw_m)), sql.Literal(int(self.ef_construction))
                )
                if self.index == "hnsw"
                else sql.SQL("lists = {}").format(sql.Literal(int(self.ivf_lists)))
            )
            conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING {} (embedding {}) WITH ({})"
                ).format(
                    sql.Identifier(f"{self.table}_embedding_idx"),
                    table,
                    sql.SQL(self.index),
                    operator_class,
                    options,
                )
            )
        self._read_table(conn)
        self.dimension = dimension
        self._exists = True

    # -- writing ------------------------------------------------------------------------------
    def _existing(self, ids: Sequence[str]) -> set[str]:
        if not self._exists or not ids:
            return set()
        found: set[str] = set()
        statement = _sql().SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(self._qualified())
        for part in batched(ids, _IDS_PER_QUERY):
            found.update(row[0] for row in self._conn.execute(statement, [part]))
        return found

    def write(self, chunks: Sequence[Chunk], policy: WritePolicy | str = WritePolicy.UPSERT) -> int:
        """Store chunks (each must carry an embedding), in one transaction. Returns how many
        were written."""
        policy = WritePolicy.parse(policy)
        if not chunks:
            return 0
        sql = _sql()
        with self._lock:
            self.warm_up()
            if not self._exists:
                self._read_table(self._conn)  # another process may have created it
            vectors = chunk_vectors(chunks, self.dimension, f"table {self.schema}.{self.table}")
            unique = {c.id: (c, v) for c, v in zip(chunks, vectors)}  # the last one wins
            with self._conn.transaction():
                unique = apply_write_policy(unique, policy, self._existing)
                if not unique:
                    return 0
                if not self._exists:
                    self._create_table(vectors[0].shape[0])
                conflict = (
                    "DO UPDATE SET embedding = EXCLUDED.embedding, text = EXCLUDED.text, "
                    "metadata = EXCLUDED.metadata"
                    if policy is WritePolicy.UPSERT
                    else "DO NOTHING"
                )
                statement = sql.SQL(
                    "INSERT INTO {} (id, embedding, text, metadata) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (id) " + conflict
                ).format(self._qualified())
                rows = [(c.id, v, c.text, jsonb(c.metadata)) for c, v in unique.values()]
                with self._conn.cursor() as cursor:
                    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                        cursor.executemany(statement, rows[start : start + _ROWS_PER_STATEMENT])
            self._changed()
            return len(rows)

    def delete(self, ids: Sequence[str] | None = None, filters: Filters | None = None) -> int:
        """Delete by ids and/or filters (both given: chunks matching both). Returns the count."""
        check_delete_arguments(ids, filters)
        where, params = to_sql(parse_filter(filters))
        sql = _sql()
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            deleted = 0
            with self._conn.transaction():
                if ids is None:
                    statement = sql.SQL("DELETE FROM {} WHERE " + where).format(self._qualified())
                    deleted = self._conn.execute(statement, params).rowcount
                else:
                    statement = sql.SQL("DELETE FROM {} WHERE id = ANY(%s) AND " + where).format(
                        self._qualified()
                    )
                    for part in batched(ids, _IDS_PER_QUERY):
                        deleted += self._conn.execute(statement, [part, *params]).rowcount
            if deleted:
                self._changed()
            return deleted

    def clear(self) -> None:
        """Delete every chunk (the table and its indexes stay)."""
        with self._lock:
            self.warm_up()
            if self._exists:
                self._conn.execute(_sql().SQL("TRUNCATE {}").format(self._qualified()))
                self._changed()

    def _close(self) -> None:
        self._conn.close()
        self._conn = None
        self._exists = False

    # -- reading ------------------------------------------------------------------------------
    def _score(self, distance: float) -> float:
        if self.metric == "cosine":
            return 1.0 - distance
        return -distance  # <#> is the negative inner product; <-> the L2 distance

    def search(self, vector: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` nearest chunks among those matching ``filters`` (best first)."""
        node = parse_filter(filters)
        check_k(k)
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            query = query_vector(vector, self.dimension)
            hits = self._search(query, k, node, exact=self.index == "flat")
            # An approximate index can stop short of a selective filter's matches.
            approximate = node is not None and self.index != "flat"
            if approximate and len(hits) < k and self.count(filters) > len(hits):
                hits = self._search(query, k, node, exact=True)
            return hits

    def _search(self, query: np.ndarray, k: int, node: FilterNode | None, exact: bool) -> list[Hit]:
        sql = _sql()
        where, params = to_sql(node)
        operator = METRICS[self.metric][0]
        statement = sql.SQL(
            "SELECT id, text, metadata, embedding " + operator + " %s AS distance FROM {} "
            "WHERE " + where + " ORDER BY embedding " + operator + " %s LIMIT %s"
        ).format(self._qualified())
        with self._conn.transaction():
            if exact:
                self._conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
                self._conn.execute("SELECT set_config('enable_bitmapscan', 'off', true)")
            elif self.index == "hnsw":
                ef = str(min(max(self.ef_search, k), _MAX_EF_SEARCH))
                self._conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [ef])
                if self._iterative_scan:
                    self._conn.execute(
                        "SELECT set_config('hnsw.iterative_scan', 'strict_order', true)"
                    )
            elif self.index == "ivfflat":
                probes = str(max(1, self.ivf_probes))
                self._conn.execute("SELECT set_config('ivfflat.probes', %s, true)", [probes])
            rows = self._conn.execute(statement, [query, *params, query, k]).fetchall()
        return [
            Hit(Chunk(id=row[0], text=row[1], metadata=row[2]), self._score(float(row[3])))
            for row in rows
        ]

    def count(self, filters: Filters | None = None) -> int:
        where, params = to_sql(parse_filter(filters))
        with self._lock:
            self.warm_up()
            if not self._exists:
                return 0
            statement = (
                _sql().SQL("SELECT count(*) FROM {} WHERE " + where).format(self._qualified())
            )
            return int(self._conn.execute(statement, params).fetchone()[0])

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, with embeddings, in the order asked (unknown ids are left out)."""
        with self._lock:
            self.warm_up()
            if not self._exists or not ids:
                return []
            id_list = list(ids)
            statement = (
                _sql()
                .SQL("SELECT id, text, metadata, embedding FROM {} WHERE id = ANY(%s)")
                .format(self._qualified())
            )
            found: dict[str, Chunk] = {}
            for part in batched(id_list, _IDS_PER_QUERY):
                for row in self._conn.execute(statement, [part]):
                    found[row[0]] = Chunk(
                        id=row[0],
                        text=row[1],
                        metadata=row[2],
                        embedding=_array(row[3]),
                    )
            return [found[i] for i in id_list if i in found]

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[Chunk]:
        """Every stored chunk (without embedding), in id order, a page at a time."""
        statement = (
            _sql()
            .SQL("SELECT id, text, metadata FROM {} WHERE id > %s ORDER BY id LIMIT %s")
            .format(self._qualified())
        )
        after = ""
        while True:
            with self._lock:
                self.warm_up()
                if not self._exists:
                    return
                rows = self._conn.execute(statement, [after, batch_size]).fetchall()
            for row in rows:
                yield Chunk(id=row[0], text=row[1], metadata=row[2])
            if len(rows) < batch_size:
                return
            after = rows[-1][0]

    def ids(self) -> list[str]:
        """Every stored chunk id."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return []
            statement = _sql().SQL("SELECT id FROM {} ORDER BY id").format(self._qualified())
            return [row[0] for row in self._conn.execute(statement)]

    def fingerprint(self) -> str:
        """Changes when any process writes or deletes (row count and newest row version)."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return f"pgvector:{self.schema}.{self.table}:empty"
            statement = (
                _sql()
                .SQL("SELECT count(*), coalesce(max(xmin::text::bigint), 0) FROM {}")
                .format(self._qualified())
            )
            count, newest = self._conn.execute(statement).fetchone()
            return f"pgvector:{self.schema}.{self.table}:{count}:{newest}:{self._version}"

    def stats(self) -> dict[str, Any]:
        """``{"chunks", "sources", "dimension"}``."""
        with self._lock:
            self.warm_up()
            if not self._exists:
                return {"chunks": 0, "sources": 0, "dimension": self.dimension}
            statement = (
                _sql()
                .SQL("SELECT count(*), count(DISTINCT metadata ->> 'source') FROM {}")
                .format(self._qualified())
            )
            chunks, sources = self._conn.execute(statement).fetchone()
            return {"chunks": int(chunks), "sources": int(sources), "dimension": self.dimension}

    def records_location(self) -> str:
        """Where ``writer.store`` keeps ingestion records by default: a local SQLite file
        named after the server, database and table, under ``.rag/records/``."""
        try:
            from psycopg.conninfo import conninfo_to_dict

            parts = conninfo_to_dict(self.url)
        except Exception:
            parts = {}
        server = "-".join(
            str(parts.get(key) or default)
            for key, default in (("host", "localhost"), ("port", 5432), ("dbname", "postgres"))
        )
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"pgvector-{server}-{self.schema}.{self.table}")
        return str(Path(".rag") / "records" / f"{name}.records.sqlite")
