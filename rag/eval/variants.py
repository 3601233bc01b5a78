"""Variants: the points of an eval file's grid, applied to the built component graph.

A variant is a name, overrides ``{"<component>.<parameter>": value}`` and the retriever to use.
Its pipeline file is the eval's pipeline file with the overrides set as init parameters of the
*built* components: core serializes the graph (:meth:`PipelineFile.to_dict`), the overrides
replace init parameters, and core builds it again (:meth:`PipelineFile.from_dict`), so references
between components (``"@name"``) are written and read by core only.

Two hashes decide what is reused between variants and runs:

- :func:`ingest_key`: the ingestion configuration (the ingest pipeline's components and every
  component they refer to, after overrides, and the corpus). Variants with the same key share
  one store. Store locations (the runner sets them) and the parameters that change how fast
  vectors are computed, never which ones (:data:`rag.pipelines.records.VECTOR_NEUTRAL_PARAMETERS`,
  the list ``rag ingest`` uses), are left out.
- :func:`variant_key`: everything that determines a variant's results (resuming safely).

Example:
    >>> from rag.core.pipeline import PipelineFile
    >>> from rag.eval.variants import Variant, apply_parameters
    >>> app = PipelineFile.load("examples/ingest.yaml")
    >>> variant = Variant(name="small chunks", overrides={"splitter.chunk_size": 128})
    >>> changed = apply_parameters(app, variant.by_component())
    >>> changed.components["splitter"].init_parameters["chunk_size"]
    128
    >>> dense = changed.components["retriever"].init_parameters["retrievers"][0]
    >>> dense is changed.components["dense"]  # references stay references
    True
    >>> dense is app.components["dense"]  # and every component is a new object
    False
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.core.component import Component, serialize_value
from rag.core.errors import did_you_mean
from rag.core.pipeline import PipelineFile
from rag.core.protocols import Retriever, VectorStore
from rag.core.yaml_io import LocatedYaml
from rag.pipelines.records import VECTOR_NEUTRAL_PARAMETERS

if TYPE_CHECKING:
    from rag.eval.config import EvalConfig

__all__ = [
    "RETRIEVER_KEY",
    "Variant",
    "apply_parameters",
    "component_parameters",
    "ingest_components",
    "ingest_key",
    "parse_variants",
    "retriever_choices",
    "variant_key",
    "variant_pipeline_file",
]

RETRIEVER_KEY = "retriever"
"""The grid key that picks the retriever component instead of setting a parameter."""


@dataclass
class Variant:
    """One point of the grid: overrides by dotted path and the retriever to use.

    Example:
        >>> Variant(name="v", overrides={"splitter.chunk_size": 64}, retriever="bm25").params()
        {'splitter.chunk_size': 64, 'retriever': 'bm25'}
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    retriever: str = "retriever"
    line: int | None = None

    def params(self) -> dict[str, Any]:
        return {**self.overrides, RETRIEVER_KEY: self.retriever}

    def by_component(self) -> dict[str, dict[str, Any]]:
        """The overrides as ``{component: {parameter: value}}``."""
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in self.overrides.items():
            component, _, parameter = key.partition(".")
            grouped.setdefault(component, {})[parameter] = value
        return grouped


# -- the component graph -------------------------------------------------------------------------
def component_parameters(component: Component) -> list[str]:
    """The init parameters ``component`` takes by name, in the constructor's order."""
    signature = inspect.signature(type(component))
    return [
        name
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def retriever_choices(pipeline_file: PipelineFile) -> dict[str, str]:
    """``{choice: component name}``: retriever components and pipelines that hold exactly one."""
    choices = {
        name: name
        for name, component in pipeline_file.components.items()
        if isinstance(component, Retriever)
    }
    for pipe_name, pipeline in pipeline_file.pipelines.items():
        inner = [n for n in pipeline.components if n in choices.values()]
        if len(inner) == 1 and pipe_name not in choices:
            choices[pipe_name] = inner[0]
    return choices


def _children(value: Any) -> Iterator[Component]:
    if isinstance(value, Component):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _children(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _children(item)


def ingest_components(pipeline_file: PipelineFile, ingest: str) -> list[str]:
    """Named components of pipeline ``ingest`` and every named component they use, in order.

    Components nested inline in another one are walked through (a store they use counts).
    """
    names = {id(c): n for n, c in pipeline_file.components.items()}
    seen: list[str] = []
    visited: set[int] = set()
    queue = list(pipeline_file.pipeline(ingest).components.values())
    while queue:
        component = queue.pop(0)
        if id(component) in visited:
            continue
        visited.add(id(component))
        if id(component) in names:
            seen.append(names[id(component)])
        queue += list(_children(component.init_parameters))
    return seen


def apply_parameters(
    pipeline_file: PipelineFile, parameters: Mapping[str, Mapping[str, Any]]
) -> PipelineFile:
    """A new pipeline file: ``pipeline_file`` with init parameters replaced per component.

    Values are what a pipeline file holds (plain data; ``"@name"`` refers to a component, as in
    YAML), or a component of ``pipeline_file`` itself, which is referred to by its name.
    Nothing is warmed up; every component of the result is a new object.

    Raises:
        ConfigError: a value the component refuses (core's message, naming the field).
    """
    data = pipeline_file.to_dict()
    names = {id(c): n for n, c in pipeline_file.components.items()}
    for component, values in parameters.items():
        spec = data["components"][component]
        params = spec.setdefault("init_parameters", {})
        for name, value in values.items():
            # core writes the reference to a component of the file
            params[name] = serialize_value(value, names) if isinstance(value, Component) else value
    built = PipelineFile.from_dict(data, registry=pipeline_file.registry)
    built.source = pipeline_file.source
    return built


def _store_location(component: Component) -> str | None:
    """The parameter that places a store's files (``path``, or ``uri`` for milvus-lite)."""
    if not isinstance(component, VectorStore):
        return None
    params = component_parameters(component)
    return "path" if "path" in params else ("uri" if "uri" in params else None)


def variant_pipeline_file(
    config: EvalConfig, variant: Variant, *, store_root: Path
) -> PipelineFile:
    """The pipeline file of ``variant``: its overrides, its stores under ``store_root``, and the
    answer chain (if any) retrieving with the variant's retriever.

    Raises:
        ConfigError: an override the component refuses.
    """
    overridden = apply_parameters(config.pipeline_file, variant.by_component())
    placed: dict[str, dict[str, Any]] = {}
    for name in ingest_components(overridden, config.ingest):
        location = _store_location(overridden.components[name])
        if location:
            suffix = ".db" if location == "uri" else ""
            placed[name] = {location: str(store_root / f"{name}{suffix}")}
    if config.answers is not None:
        chain = overridden.components[config.answers.chain]
        if RETRIEVER_KEY in component_parameters(chain):
            retriever = overridden.components[variant.retriever]
            placed.setdefault(config.answers.chain, {})[RETRIEVER_KEY] = retriever
    return apply_parameters(overridden, placed)


def _hash(parts: Any, length: int) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _described(pipeline_file: PipelineFile, name: str) -> dict[str, Any]:
    """Component ``name`` as data (``${VAR}`` values resolved; other components by name)."""
    component = pipeline_file.components[name]
    names = {id(c): n for n, c in pipeline_file.components.items() if c is not component}
    return component.to_dict(references=names, registry=pipeline_file.registry, resolved=True)


def ingest_key(config: EvalConfig, variant: Variant) -> str:
    """Hash of the ingestion configuration of ``variant`` (components after overrides, corpus).

    Store locations are left out (the runner sets them); so are the parameters that change
    speed, not vectors (:data:`rag.pipelines.records.VECTOR_NEUTRAL_PARAMETERS`).
    """
    overridden = apply_parameters(config.pipeline_file, variant.by_component())
    parts: list[Any] = []
    for name in ingest_components(overridden, config.ingest):
        spec = _described(overridden, name)
        location = _store_location(overridden.components[name])
        params = {
            k: v
            for k, v in spec["init_parameters"].items()
            if k != location and k not in VECTOR_NEUTRAL_PARAMETERS
        }
        parts.append([name, spec["type"], params])
    corpus = config.dataset.corpus_path
    stat = corpus.stat() if corpus and corpus.exists() else None
    parts.append(
        [str(corpus.resolve()) if corpus else None, stat.st_size if stat else None, config.ingest]
    )
    return _hash(parts, 12)


def variant_key(config: EvalConfig, variant: Variant) -> str:
    """Hash of everything that determines a variant's results (for resuming safely)."""
    overridden = apply_parameters(config.pipeline_file, variant.by_component())
    components = {name: _described(overridden, name) for name in overridden.components}
    pipelines = {name: list(p.components) for name, p in overridden.pipelines.items()}
    return _hash(
        [components, pipelines, variant.retriever, config.k, config.fetch_k, config.dataset.name],
        8,
    )


# -- the grid and the variants of an eval file ---------------------------------------------------
def parse_variants(
    data: Mapping[str, Any],
    located: LocatedYaml,
    pipeline_file: PipelineFile,
    check_retriever: Callable[[Any, tuple[Any, ...]], str],
    default_retriever: str,
) -> list[Variant]:
    """The variants of an eval file's ``grid`` (cross product) and ``variants`` (listed).

    Raises:
        ConfigError: located in the eval file: a key naming no component parameter (with the
            closest valid one), an empty grid list, an unknown retriever, duplicate names.
    """
    components = pipeline_file.components
    valid = {
        f"{comp}.{param}": True
        for comp, component in components.items()
        for param in component_parameters(component)
    }

    def check_key(key: str, where: tuple[Any, ...]) -> None:
        if key == RETRIEVER_KEY or key in valid:
            return
        comp, _, param = key.partition(".")
        if comp in components and param:
            own = [k for k in valid if k.startswith(comp + ".")]
            message = (
                f"component '{comp}' has no parameter '{param}'.{did_you_mean(key, own)} "
                f"Valid: {', '.join(own)}"
            )
        else:
            message = (
                f"'{key}' names no component parameter.{did_you_mean(key, valid)} Use "
                f"'<component>.<parameter>' or '{RETRIEVER_KEY}'. Components: "
                f"{', '.join(components)}; valid keys: {RETRIEVER_KEY}, {', '.join(valid)}"
            )
        raise located.error(message, where)

    variants: list[Variant] = []
    grid = data.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise located.error("'grid' must map '<component>.<parameter>' to lists", ("grid",))
        keys = list(grid)
        for key in keys:
            check_key(str(key), ("grid", key))
            if not isinstance(grid[key], list) or not grid[key]:
                raise located.error(f"grid '{key}' must be a non-empty list", ("grid", key))
        for key in keys:
            if key == RETRIEVER_KEY:
                for index, value in enumerate(grid[key]):
                    check_retriever(value, ("grid", key, index))
        short = _short_names(keys)
        for values in itertools.product(*(grid[key] for key in keys)):
            chosen = dict(zip(keys, values))
            retriever = chosen.pop(RETRIEVER_KEY, None)
            name = " ".join(f"{short[k]}={v}" for k, v in zip(keys, values)) or "default"
            variants.append(
                Variant(
                    name=name,
                    overrides=chosen,
                    retriever=check_retriever(retriever, ("grid",))
                    if retriever is not None
                    else default_retriever,
                    line=located.line_of(("grid",)),
                )
            )
    for index, spec in enumerate(data.get("variants") or []):
        where = ("variants", index)
        if not isinstance(spec, dict) or "name" not in spec:
            raise located.error("a variant is {name, set: {<component>.<parameter>: value}}", where)
        overrides = dict(spec.get("set") or {})
        for key in overrides:
            check_key(str(key), (*where, "set", key))
        retriever = overrides.pop(RETRIEVER_KEY, None)
        variants.append(
            Variant(
                name=str(spec["name"]),
                overrides=overrides,
                retriever=check_retriever(retriever, (*where, "set", RETRIEVER_KEY))
                if retriever is not None
                else default_retriever,
                line=located.line_of(where),
            )
        )
    if not variants:
        variants.append(Variant(name="default", retriever=default_retriever))
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise located.error(f"variant names must be unique: {', '.join(duplicates)}", ("variants",))
    return variants


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    """``splitter.chunk_size`` -> ``chunk_size`` unless two keys share the parameter name."""
    last = [k.rpartition(".")[2] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def slug(name: str) -> str:
    """A variant name as a folder name (``chunk_size=64 retriever=bm25`` keeps its ``=``)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in name)
    return cleaned.strip("_")[:80] or "variant"
