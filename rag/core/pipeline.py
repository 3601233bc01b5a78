"""Pipelines: the graph and the pipeline file, under the import path users already know.

The graph (:class:`Pipeline`, :class:`Connection`, validation) lives in :mod:`rag.core.graph`;
the pipeline file (:class:`PipelineFile`, its YAML builder, ``"@name"`` references, ``${VAR}``
expansion) lives in :mod:`rag.core.pipeline_file`. Both are re-exported here, so
``from rag.core.pipeline import Pipeline, PipelineFile`` keeps working.

Example:
    >>> from rag.core.pipeline import Pipeline, PipelineFile
    >>> app = PipelineFile.load("examples/ingest.yaml")
    >>> isinstance(app.pipeline("search"), Pipeline)
    True
"""

from __future__ import annotations

from rag.core.graph import Connection, Pipeline
from rag.core.pipeline_file import LiteralSecretWarning, PipelineFile

__all__ = ["Connection", "LiteralSecretWarning", "Pipeline", "PipelineFile"]
