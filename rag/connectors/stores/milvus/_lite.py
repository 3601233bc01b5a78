"""The milvus-lite lifecycle of ``store.milvus``: one embedded server per database file, shared
by the stores of this process, and the repairs a killed process can make necessary."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from rag.connectors.stores._common import batched
from rag.connectors.stores.milvus._filters import SCALAR_PREFIX, ids_expr
from rag.connectors.stores.milvus._schema import IDS_PER_QUERY, ROW_FIELDS, load_pymilvus
from rag.core.errors import ConfigError

logger = logging.getLogger("rag.connectors.stores.milvus")  # one name for the package

# Keys of ``describe_index`` that describe the index rather than set its build parameters.
INDEX_DESCRIPTION_KEYS = frozenset(
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


def pending_log(database: Path, collection: str) -> bool:
    """Whether milvus-lite's write-ahead log of ``collection`` holds data (a clean close
    flushes and deletes it)."""
    wal = database / "collections" / collection / "wal"
    try:
        return any(f.is_file() and f.stat().st_size > 0 for f in wal.iterdir())
    except OSError:
        return False


def lite_acquire(path: str) -> None:
    with _LITE_USERS_LOCK:
        _LITE_USERS[path] = _LITE_USERS.get(path, 0) + 1


def lite_release(path: str) -> None:
    with _LITE_USERS_LOCK:
        users = _LITE_USERS.get(path, 0) - 1
        if users > 0:
            _LITE_USERS[path] = users
            return
        _LITE_USERS.pop(path, None)
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


class MilvusLiteRepair:
    """Repairs of a milvus-lite file left by a killed process (a mixin of ``MilvusStore``)."""

    _typed: dict[str, str]
    _client: Any

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
            params = {k: v for k, v in index.items() if k not in INDEX_DESCRIPTION_KEYS}
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
        except load_pymilvus().MilvusException as err:
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
        fields = [*ROW_FIELDS, *(SCALAR_PREFIX + key for key in self._typed)]
        for part in batched(repeated, IDS_PER_QUERY):
            rows = self._client.query(
                self.collection,
                filter=ids_expr(part),
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
