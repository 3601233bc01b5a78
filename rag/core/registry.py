"""Short type names (``store.faiss``) for component classes.

``rag.core`` names no class of the layers above it: ragline's own components are declared like
any other package's, as entry points of the ``ragline.components`` group (the
``[project.entry-points."ragline.components"]`` table of ``pyproject.toml``), and the registry
reads that group. A name maps to a ``"module:Class"`` string imported on first use, so
``import rag`` stays fast and a missing optional dependency only matters when its component is
used. An application can also register its own classes on a :class:`Registry` it passes to
``Pipeline.load``.

An editable install (``pip install -e .``) writes the entry points when it is installed: after
the table changes, install again (``scripts/bootstrap.sh`` does).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from typing import Any, cast

from rag.core.errors import ConfigError, UnknownComponentError, did_you_mean

ENTRY_POINT_GROUP = "ragline.components"
DISTRIBUTION = "ragline"
"""The distribution whose entry points are the built-in names."""


@functools.cache
def _declared() -> tuple[dict[str, str], dict[str, str]]:
    """``(ragline's own, other packages')`` names of :data:`ENTRY_POINT_GROUP`, read once per
    process (a plugin installed later is seen by the next process)."""
    own: dict[str, str] = {}
    others: dict[str, str] = {}
    try:
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken environments
        return own, others
    for point in points:
        dist = point.dist.name if point.dist is not None else ""
        is_own = re.sub(r"[-_.]+", "-", dist).lower() == DISTRIBUTION
        (own if is_own else others)[point.name] = point.value
    return own, others


BUILTIN_COMPONENTS: dict[str, str] = dict(_declared()[0])
"""ragline's own names, ``{"store.faiss": "<module>:FaissStore", ...}``, as
its installed distribution declares them."""

_NOT_INSTALLED = (
    " (no built-in component is registered: ragline's own names are entry points of its "
    "installed distribution, and none was found; install it, e.g. 'pip install -e .' in a "
    "checkout)"
)


class Registry:
    """Maps short type names to component classes.

    Example:
        >>> from rag.core.registry import Registry
        >>> registry = Registry()
        >>> registry.resolve("store.faiss").__name__
        'FaissStore'
    """

    def __init__(self, entries: dict[str, str | type] | None = None) -> None:
        own, others = _declared()
        self._entries: dict[str, str | type] = {**own, **others, **(entries or {})}

    def register(self, name: str, cls: type) -> None:
        """Add (or replace) a short name on this registry."""
        self._entries[name] = cls

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def resolve(self, name: str, *, allow_imports: bool = False) -> type:
        """Return the class for a short name (or a dotted path when ``allow_imports``).

        Raises:
            UnknownComponentError: unknown name, with the closest known names.
        """
        target = self._entries.get(name)
        if target is None:
            if ":" in name or name.count(".") >= 2:
                if not allow_imports:
                    raise UnknownComponentError(
                        f"'{name}' looks like an import path; importing classes named in YAML is "
                        "refused by default. Register the class under a short name, or load with "
                        "allow_imports=True (CLI: RAGLINE_ALLOW_IMPORTS=1) if you trust this file"
                    )
                return _import_path(name)
            family = name.split(".")[0]
            same_family = [n for n in self._entries if n.split(".")[0] == family]
            raise UnknownComponentError(
                f"unknown component type '{name}'.{did_you_mean(name, self._entries)} "
                f"Known: {', '.join(sorted(same_family or self._entries)) or '(none)'}"
                + ("" if _declared()[0] else _NOT_INSTALLED)
            )
        if isinstance(target, str):
            target = _import_path(target)
            self._entries[name] = target
        return target

    def name_of(self, cls: type) -> str | None:
        """The short name registered for ``cls``, if any.

        A name may point at the path a package re-exports the class from (``package:Store``
        for a class defined in ``package._store``): that counts when the module is imported and
        holds ``cls`` (nothing is imported to find out).

        Example:
            >>> from collections import OrderedDict
            >>> Registry({"toy.ordered": "collections:OrderedDict"}).name_of(OrderedDict)
            'toy.ordered'
        """
        qualified = f"{cls.__module__}:{cls.__qualname__}"
        for name, target in self._entries.items():
            if target is cls or target == qualified:
                return name
        for name, target in self._entries.items():
            if isinstance(target, str) and ":" in target:
                module_name, _, attr = target.partition(":")
                module = sys.modules.get(module_name)
                # a registered "module:Class" path, read from a module already imported
                if module is not None and getattr(module, attr, None) is cls:  # module attribute
                    return name
        return None


def _import_path(path: str) -> type:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls: Any = getattr(module, attr)  # the class a "module:Class" name points to
    except (ImportError, AttributeError) as err:
        if isinstance(err, ImportError) and err.__class__.__name__ == "MissingDependencyError":
            raise
        raise ConfigError(f"cannot import '{path}': {err}") from err
    return cast(type, cls)


default_registry = Registry()
"""The registry ``Pipeline.load`` uses unless it is given another."""


ALLOW_IMPORTS_ENV = "RAGLINE_ALLOW_IMPORTS"
_IMPORTS_ALLOWED: ContextVar[bool] = ContextVar("ragline_imports_allowed", default=False)


def imports_allowed() -> bool:
    """Whether names in YAML may be import paths: inside :func:`allowing_imports` (what
    ``PipelineFile.load(..., allow_imports=True)`` does while it builds) or with
    ``RAGLINE_ALLOW_IMPORTS=1``.

    Example:
        >>> with allowing_imports(True):
        ...     imports_allowed()
        True
    """
    return _IMPORTS_ALLOWED.get() or os.environ.get(ALLOW_IMPORTS_ENV) == "1"


@contextmanager
def allowing_imports(allowed: bool) -> Iterator[None]:
    """Let components built inside the block (chain tools, for one) resolve import paths."""
    token = _IMPORTS_ALLOWED.set(allowed)
    try:
        yield
    finally:
        _IMPORTS_ALLOWED.reset(token)
