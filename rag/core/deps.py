"""Import an optional dependency, or say exactly what to install.

Heavy or optional libraries (torch, faiss, pymilvus, ray, ...) are imported where they are
needed, through :func:`require`, so that ``import rag`` stays light and a missing one is a
:class:`~rag.core.errors.MissingDependencyError` naming the package and the extra.

Example:
    >>> from rag.core.deps import require
    >>> require("json", package="json", extra="base", purpose="reading JSON").__name__
    'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rag.core.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install.

    Args:
        module: The module to import (``"faiss"``).
        package: The distribution that provides it (``"faiss-cpu"``).
        extra: The ragline extra that installs it (``pip install 'ragline[faiss]'``).
        purpose: What needs it, for the message (``"store.faiss"``).

    Raises:
        MissingDependencyError: ``module`` is not installed.
        ImportError: the package is installed but one of its own imports failed (shown as is).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name and not module.startswith(err.name.split(".")[0]):
            raise  # the package is there but one of its own imports failed: show that
        raise MissingDependencyError(package, extra, purpose) from err
