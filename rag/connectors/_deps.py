"""Import optional dependencies with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from rag.core.errors import MissingDependencyError


def require(module: str, *, package: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name and not module.startswith(err.name.split(".")[0]):
            raise  # the package is there but one of its own imports failed: show that
        raise MissingDependencyError(package, extra, purpose) from err
