"""The pipeline file: named components and the pipelines that share them, in one YAML file.

A *pipeline file* holds named components and one or more pipelines that use them, so the
ingestion and the query pipeline of an application share the same store and embedder::

    components:
      embedder: {type: embedder.sentence_transformers, init_parameters: {model: all-MiniLM-L6-v2}}
      store:    {type: store.faiss, init_parameters: {path: .rag/index}}
      loader:   {type: loader.files}
      splitter: {type: splitter.recursive, init_parameters: {chunk_size: 200}}
      writer:   {type: writer.store, init_parameters: {store: "@store", embedder: "@embedder"}}
      retriever: {type: retriever.dense, init_parameters: {store: "@store", embedder: "@embedder"}}
    pipelines:
      ingest: {components: [loader, splitter, writer]}    # linear: connections inferred
      search: {components: [retriever]}

``"@name"`` refers to another component of the file (write ``"@@"`` for a literal ``@``).
``${VAR}`` is replaced by an environment variable; parameters typed as
:class:`~rag.core.secrets.Secret` keep the reference and read the variable when used.

Example:
    >>> from rag.core.pipeline_file import PipelineFile
    >>> app = PipelineFile.load("examples/ingest.yaml")
    >>> sorted(app.pipelines)
    ['ingest', 'search']
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag.core.component import Component, accepts, build_component, constructor, type_hints
from rag.core.errors import (
    ConfigError,
    MissingEnvVarError,
    PipelineError,
    RagWarning,
    did_you_mean,
)
from rag.core.graph import Pipeline
from rag.core.protocols import Closable
from rag.core.registry import Registry, allowing_imports, default_registry, imports_allowed
from rag.core.secrets import Secret, looks_like_secret
from rag.core.yaml_io import LocatedYaml, dump_yaml, expand_env_refs, read_yaml

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LiteralSecretWarning(RagWarning):
    """A pipeline file holds what looks like a credential itself (the value is never shown)."""


class PipelineFile:
    """Named components and the pipelines built from them (one YAML file).

    Example:
        >>> # The search loads the embedding model and needs an ingested index.
        >>> from rag.core.pipeline import PipelineFile
        >>> app = PipelineFile.load("examples/ingest.yaml")
        >>> app.pipeline("search").run(query="What is RAG?")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        components: Mapping[str, Component] | None = None,
        pipelines: Mapping[str, Pipeline] | None = None,
        source: str | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.registry = registry or default_registry
        self.components: dict[str, Component] = dict(components or {})
        self.pipelines: dict[str, Pipeline] = dict(pipelines or {})
        self.source = source
        for pipeline in self.pipelines.values():
            for comp_name, component in pipeline.components.items():
                self.components.setdefault(comp_name, component)

    def pipeline(self, name: str | None = None) -> Pipeline:
        """Pipeline ``name``, or the first one when ``name`` is ``None``."""
        if not self.pipelines:
            raise ConfigError("the file defines no pipeline", file=self.source, field="pipelines")
        if name is None:
            return next(iter(self.pipelines.values()))
        if name not in self.pipelines:
            raise ConfigError(
                f"no pipeline named '{name}'.{did_you_mean(name, self.pipelines)} "
                f"Pipelines: {', '.join(self.pipelines)}",
                file=self.source,
                field="pipelines",
            )
        return self.pipelines[name]

    def find(self, kind: type) -> list[tuple[str, Component]]:
        """Components of the file that are instances of ``kind``."""
        return [(n, c) for n, c in self.components.items() if isinstance(c, kind)]

    def close(self) -> None:
        """Close every component that holds a resource (:class:`~rag.core.protocols.Closable`,
        nested ones included): a store's connection and files, a server process. Each is
        closed even when another fails; the first failure is raised afterwards. ``store.faiss``
        writes its open cache when closed, so the next process opens it without reading SQLite.

        Example:
            >>> PipelineFile().close()  # nothing to close
        """
        failures: list[Exception] = []
        for component in self._named_components().values():
            if isinstance(component, Closable):
                try:
                    component.close()
                except Exception as err:  # close the others, then raise it
                    failures.append(err)
        if failures:
            raise failures[0]

    # -- serialization ------------------------------------------------------------------------
    def _named_components(self) -> dict[str, Component]:
        """Every component of the file, including nested ones that several others share."""
        named = dict(self.components)
        seen = {id(c) for c in named.values()}
        queue = list(named.values())
        while queue:
            component = queue.pop()
            for param, value in component.init_parameters.items():
                children = value if isinstance(value, (list, tuple)) else [value]
                for child in children:
                    if isinstance(child, Component) and id(child) not in seen:
                        base, n = param.rstrip("s") or param, 1
                        new_name = base
                        while new_name in named:
                            n += 1
                            new_name = f"{base}_{n}"
                        named[new_name] = child
                        seen.add(id(child))
                        queue.append(child)
        return named

    def to_dict(self) -> dict[str, Any]:
        named = self._named_components()
        references = {id(c): n for n, c in named.items()}
        components = {}
        for comp_name, component in named.items():
            own = {k: v for k, v in references.items() if k != id(component)}
            components[comp_name] = component.to_dict(references=own, registry=self.registry)
        pipelines = {}
        for pipe_name, pipeline in self.pipelines.items():
            entry: dict[str, Any] = {"components": list(pipeline.components)}
            if pipeline.explicit_connections:
                entry["connections"] = [c.to_dict() for c in pipeline.connections]
            pipelines[pipe_name] = entry
        return {"components": components, "pipelines": pipelines}

    def dump(self, path: str | Path | None = None) -> str:
        text = dump_yaml(self.to_dict())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        registry: Registry | None = None,
        allow_imports: bool = False,
        text: str | None = None,
    ) -> PipelineFile:
        """Load and validate a pipeline file.

        Raises:
            ConfigError: with the file, line and field of the first problem found.
        """
        located = read_yaml(path, text=text)
        allow_imports = allow_imports or imports_allowed()
        with allowing_imports(allow_imports):
            return _Builder(located, registry or default_registry, allow_imports).build()

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, registry: Registry | None = None
    ) -> PipelineFile:
        located = LocatedYaml(data=json.loads(json.dumps(data)))
        return _Builder(located, registry or default_registry, False).build()


class _Builder:
    """Turns located YAML data into components and pipelines, with located errors."""

    TOP_LEVEL = ("components", "pipelines", "connections", "version", "metadata")

    def __init__(self, located: LocatedYaml, registry: Registry, allow_imports: bool) -> None:
        self.located = located
        self.registry = registry
        self.allow_imports = allow_imports
        self.specs: dict[str, Any] = {}
        self.built: dict[str, Component] = {}
        self.building: list[str] = []

    def fail(self, message: str, *path: Any, cls: type[ConfigError] = ConfigError) -> ConfigError:
        return self.located.error(message, tuple(path), cls)

    def build(self) -> PipelineFile:
        data = self.located.data
        if not isinstance(data, dict):
            raise self.fail("a pipeline file must be a mapping with 'components' and 'pipelines'")
        for key in data:
            if key not in self.TOP_LEVEL:
                raise self.fail(
                    f"unknown top-level key '{key}'.{did_you_mean(str(key), self.TOP_LEVEL)} "
                    f"Valid: {', '.join(self.TOP_LEVEL)}",
                    key,
                )
        self.specs = data.get("components") or {}
        if not isinstance(self.specs, dict) or not self.specs:
            raise self.fail(
                "'components' must map component names to {type, init_parameters}", "components"
            )
        self._expand_env()
        for name in self.specs:
            self._component(name, ("components", name))
        pipelines_spec = data.get("pipelines")
        if pipelines_spec is None:
            pipelines_spec = {
                "default": {
                    "components": list(self.specs),
                    "connections": data.get("connections") or [],
                }
            }
            prefix: tuple[Any, ...] = ()
        else:
            if "connections" in data:
                raise self.fail(
                    "top-level 'connections' is only for files without 'pipelines'; "
                    "put them under pipelines.<name>.connections",
                    "connections",
                )
            if not isinstance(pipelines_spec, dict) or not pipelines_spec:
                raise self.fail(
                    "'pipelines' must map pipeline names to {components, connections}", "pipelines"
                )
            prefix = ("pipelines",)
        pipelines = {
            name: self._pipeline(name, spec, (*prefix, name) if prefix else ())
            for name, spec in pipelines_spec.items()
        }
        return PipelineFile(
            components=self.built,
            pipelines=pipelines,
            source=self.located.file,
            registry=self.registry,
        )

    def _expand_env(self) -> None:
        keep: set[tuple[Any, ...]] = set()
        for name, spec in self.specs.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
                continue
            try:
                cls = self.registry.resolve(spec["type"], allow_imports=self.allow_imports)
            except ConfigError:
                continue  # reported with its line when the component is built
            hints = type_hints(constructor(cls))
            for param in spec.get("init_parameters") or {}:
                if accepts(hints.get(param), Secret):
                    keep.add(("components", name, "init_parameters", param))
        self._warn_literal_secrets(keep)
        expand_env_refs(self.located, keep=keep)
        for path in keep:
            value = self.located.data
            for part in path:
                value = value[part]
            if isinstance(value, str) and not _ENV_NAME.fullmatch(Secret.parse(value).env_var):
                # Never echo it: it is most likely the key itself.
                raise self.fail(
                    "holds a literal value, not an environment variable; secrets are read from "
                    "the environment: export the key and write e.g. '${OPENAI_API_KEY}' here "
                    "(and rotate the key if this file was shared)",
                    *path,
                )
            if isinstance(value, str) and os.environ.get(Secret.parse(value).env_var) is None:
                raise self.fail(
                    f"environment variable {Secret.parse(value).env_var} is not set; export it "
                    "before running (secrets are read from the environment, never from YAML)",
                    *path,
                    cls=MissingEnvVarError,
                )
        self.specs = self.located.data.get("components") or {}

    def _warn_literal_secrets(self, refused: set[tuple[Any, ...]]) -> None:
        """Warn (without echoing the value) about literal credentials anywhere in components;
        ``refused`` are secret-typed parameters, which are refused with an error instead."""
        stack: list[tuple[Any, tuple[Any, ...]]] = [(self.specs, ("components",))]
        while stack:
            value, path = stack.pop()
            if path in refused:
                continue
            if isinstance(value, dict):
                stack.extend((v, (*path, k)) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend((v, (*path, i)) for i, v in enumerate(value))
            elif looks_like_secret(str(path[-1]), value):
                where = self.fail("", *path)
                warnings.warn(
                    f"{where.file or '<text>'}:{where.line}: field '{where.field}' looks like a "
                    "literal credential; move it to an environment variable and write "
                    "'${NAME}' here (the value is not shown)",
                    LiteralSecretWarning,
                    stacklevel=2,
                )

    def _component(self, name: str, path: tuple[Any, ...]) -> Component:
        if name in self.built:
            return self.built[name]
        if name in self.building:
            raise self.fail(
                f"components refer to each other in a loop: {' -> '.join([*self.building, name])}",
                *path,
                cls=PipelineError,
            )
        spec = self.specs.get(name)
        if not isinstance(spec, dict):
            raise self.fail(f"component '{name}' must be a mapping with 'type'", *path)
        for key in spec:
            if key not in ("type", "init_parameters"):
                raise self.fail(
                    f"unknown key '{key}' in component '{name}'."
                    f"{did_you_mean(str(key), ['type', 'init_parameters'])} "
                    "Valid: type, init_parameters",
                    *path,
                    key,
                )
        type_name = spec.get("type")
        if not isinstance(type_name, str):
            raise self.fail(f"component '{name}' needs a 'type' such as 'store.faiss'", *path)
        try:
            cls = self.registry.resolve(type_name, allow_imports=self.allow_imports)
        except ConfigError as err:
            raise err.located(
                file=self.located.file,
                line=self.located.line_of((*path, "type")),
                field=".".join(map(str, (*path, "type"))),
            ) from None
        params = spec.get("init_parameters") or {}
        if not isinstance(params, dict):
            raise self.fail("'init_parameters' must be a mapping", *path, "init_parameters")
        self.building.append(name)

        def resolve_reference(ref: str, field: str) -> Component:
            if ref not in self.specs:
                raise ConfigError(
                    f"reference '@{ref}' names no component.{did_you_mean(ref, self.specs)} "
                    f"Components: {', '.join(self.specs)}",
                    field=field,
                )
            return self._component(ref, ("components", ref))

        field = ".".join(map(str, (*path, "init_parameters")))
        try:
            component = build_component(
                cls,
                dict(params),
                field=field,
                resolve_reference=resolve_reference,
                registry=self.registry,
                allow_imports=self.allow_imports,
            )
        except ConfigError as err:
            at = tuple(err.field.split(".")) if err.field else path
            raise err.located(
                file=self.located.file, line=self._line_for_field(at), field=err.field
            ) from None
        finally:
            self.building.pop()
        self.built[name] = component
        return component

    def _line_for_field(self, parts: tuple[str, ...]) -> int | None:
        typed: list[Any] = []
        for part in parts:
            typed.append(int(part) if part.isdigit() else part)
        return self.located.line_of(tuple(typed))

    def _pipeline(self, name: str, spec: Any, path: tuple[Any, ...]) -> Pipeline:
        if isinstance(spec, list):
            spec = {"components": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("components"), list):
            raise self.fail(f"pipeline '{name}' needs a 'components' list", *path)
        pipeline = Pipeline(name, registry=self.registry)
        for index, comp_name in enumerate(spec["components"]):
            if comp_name not in self.built:
                raise self.fail(
                    f"pipeline '{name}' uses unknown component '{comp_name}'."
                    f"{did_you_mean(str(comp_name), self.built)} "
                    f"Components: {', '.join(self.built)}",
                    *path,
                    "components",
                    index,
                    cls=PipelineError,
                )
            try:
                pipeline.add_component(comp_name, self.built[comp_name])
            except PipelineError as err:
                raise err.located(
                    file=self.located.file,
                    line=self.located.line_of((*path, "components", index)),
                    field=None,
                ) from None
        for index, connection in enumerate(spec.get("connections") or []):
            cpath = (*path, "connections", index)
            try:
                if isinstance(connection, str) and "->" in connection:
                    sender, receiver = (part.strip() for part in connection.split("->", 1))
                elif isinstance(connection, dict) and {"sender", "receiver"} <= set(connection):
                    sender, receiver = str(connection["sender"]), str(connection["receiver"])
                else:
                    raise PipelineError(
                        "a connection is 'a.output -> b.input' or "
                        "{sender: a.output, receiver: b.input}"
                    )
                pipeline.connect(sender, receiver)
            except PipelineError as err:
                raise err.located(
                    file=self.located.file,
                    line=self.located.line_of(cpath),
                    field=".".join(map(str, cpath)),
                ) from None
        try:
            pipeline.validate()
        except PipelineError as err:
            raise err.located(
                file=self.located.file,
                line=self.located.line_of(path),
                field=".".join(map(str, path)),
            ) from None
        return pipeline
