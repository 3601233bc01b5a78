"""Import optional dependencies with an install hint: moved to :mod:`rag.core.deps`.

Connectors keep importing ``require`` from here; code outside ``rag.connectors`` imports it
from :mod:`rag.core.deps`, the public home.
"""

from rag.core.deps import require

__all__ = ["require"]
