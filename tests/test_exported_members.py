"""The public surface is exactly what ``__all__`` says, errors sit in one tree, privates stay home.

In the manner of httpx's ``tests/test_exported_members.py``: a name imported into ``rag`` or
``rag.core`` but missing from ``__all__`` (a leak) fails, and so does a listed name that is not
there. Every exception class defined anywhere in ``rag`` derives from
:class:`rag.core.errors.RagError` (every warning from :class:`~rag.core.errors.RagWarning`), and
no module imports another module's private (``_name``) members.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import rag
import rag.core
import rag.core.errors

pytestmark = pytest.mark.unit

PACKAGE_ROOT = Path(rag.__file__).parent
PUBLIC_DUNDERS = {"__version__"}


def public_names(module: types.ModuleType) -> set[str]:
    """Names bound in ``module`` that are not private and not one of its submodules."""
    return {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in PUBLIC_DUNDERS)
        and not isinstance(value, types.ModuleType)
    }


@pytest.mark.parametrize("module", [rag, rag.core], ids=lambda m: m.__name__)
def test_all_is_exactly_what_the_module_holds(module: types.ModuleType) -> None:
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"
    leaked = sorted(public_names(module) - set(exported))
    missing = sorted(set(exported) - public_names(module))
    assert leaked == [], f"public in {module.__name__} but not in __all__ (add or unimport)"
    assert missing == [], f"in {module.__name__}.__all__ but not defined there"


def test_a_leaked_name_is_seen() -> None:
    module = types.ModuleType("probe")
    module.__all__ = ["Listed"]
    module.Listed = object
    module.leaked = object  # imported for internal use, not meant to be public
    module._private = object
    module.submodule = types.ModuleType("probe.submodule")
    assert public_names(module) - set(module.__all__) == {"leaked"}


def test_every_error_of_the_tree_is_exported_from_rag_core() -> None:
    tree = {
        name
        for name, value in vars(rag.core.errors).items()
        if isinstance(value, type) and issubclass(value, (rag.core.errors.RagError, Warning))
    }
    assert tree - set(rag.core.__all__) == set()


def test_store_abilities_are_exported_from_rag_core() -> None:
    from rag.core.protocols import STORE_ABILITIES

    assert {ability.__name__ for ability in STORE_ABILITIES} <= set(rag.core.__all__)


# Run in a fresh interpreter: importing every module of the package must not depend on what
# other tests imported, and must not leave the optional libraries loaded in this process.
WALK = """
import importlib, inspect, json, pkgutil, warnings
import rag
from rag.core.errors import RagError, RagWarning
outside, broken = [], []
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # third-party import-time warnings are not this test's business
    for info in pkgutil.walk_packages(rag.__path__, "rag.", onerror=broken.append):
        try:
            module = importlib.import_module(info.name)
        except Exception as err:
            broken.append(f"{info.name}: {type(err).__name__}: {err}")
            continue
        for name, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != module.__name__:
                continue  # imported, checked where it is defined
            root = RagWarning if issubclass(value, Warning) else RagError
            if not issubclass(value, root):
                bases = ", ".join(b.__name__ for b in value.__bases__)
                outside.append(f"{module.__name__}.{name}({bases}): derive from {root.__name__}")
print(json.dumps({"outside": outside, "broken": broken}))
"""


def test_every_exception_in_the_package_is_in_the_error_tree() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WALK], capture_output=True, text=True, check=True, timeout=600
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["broken"] == [], "every module of rag must import with the dev install"
    assert found["outside"] == [], (
        "exceptions outside the tree of rag.core.errors (keep what callers catch today with "
        "multiple inheritance, e.g. class X(RagError, ValueError))"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (PACKAGE_ROOT / relative).with_suffix(".py").exists() or (
        PACKAGE_ROOT / relative / "__init__.py"
    ).exists()


def private_imports(path: Path, source: str | None = None) -> list[str]:
    """Imports in ``path`` that reach another module's private names (``from rag.x import _y``).

    A private *module* (``rag.serve._backend``) may be imported from anywhere inside the package
    that holds it (``rag.serve.*``); a private *name* only inside its own module. ``source``
    stands in for the file's text.
    """
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source or path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parents, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] != "rag":
                continue
            for i, part in enumerate(parts):
                if not part.startswith("_") or (part.startswith("__") and part.endswith("__")):
                    continue
                owner = ".".join(parts[:i])
                inside = me == owner or me.startswith(owner + ".")
                if not inside or not _is_module(".".join(parts[: i + 1])):
                    found.append(f"{path.relative_to(PACKAGE_ROOT.parent)}:{node.lineno}: {target}")
                break
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = [hit for path in sorted(PACKAGE_ROOT.rglob("*.py")) for hit in private_imports(path)]
    assert found == [], "make the name public in its module (or move it) instead"


def test_the_private_import_check_can_fail() -> None:
    where = PACKAGE_ROOT / "pipelines" / "probe.py"  # never written: its text is given
    code = (
        "from rag.core.component import _helper\n"
        "from rag.serve._backend import Backend\n"
        "from ..serve import _backend\n"
        "from rag.pipelines import _stream\n"
        "from . import _stream\n"
        "import rag.serve._backend\n"
    )
    assert private_imports(where, code) == [
        "rag/pipelines/probe.py:1: rag.core.component._helper",
        "rag/pipelines/probe.py:2: rag.serve._backend.Backend",
        "rag/pipelines/probe.py:3: rag.serve._backend",
        "rag/pipelines/probe.py:6: rag.serve._backend",
    ]
