"""YAML reading that remembers where every value came from, so errors can name the line.

Reading is bounded, because a pipeline file may come from someone else: at most
:data:`MAX_YAML_BYTES` are read (``rag validate /dev/zero`` stops there), at most
:data:`MAX_YAML_NODES` values are built, counting every expansion of an alias (a "billion
laughs" file of nine nested alias levels is refused in milliseconds), an alias inside its own
anchor is refused with its line, and nesting deeper than :data:`MAX_YAML_DEPTH` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rag.core.errors import ConfigError
from rag.core.secrets import ENV_REFERENCE, EnvValue, expand_env

Path_ = tuple[Any, ...]

MAX_YAML_BYTES = 4 * 1024 * 1024
"""Largest pipeline or eval file read (4 MiB; real ones are a few kB)."""
MAX_YAML_NODES = 100_000
"""Most values built from one file, every expansion of an alias counted."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and lists."""


@dataclass
class LocatedYaml:
    """Parsed YAML data plus the 1-based line of each value, keyed by its path."""

    data: Any
    file: str | None = None
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path`` or of its nearest ancestor."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def error(self, message: str, path: Path_, cls: type[ConfigError] = ConfigError) -> ConfigError:
        return cls(
            message,
            file=self.file,
            line=self.line_of(path),
            field=".".join(str(p) for p in path) or None,
        )


def read_yaml(source: str | Path, *, text: str | None = None) -> LocatedYaml:
    """Parse a YAML file (or ``text``), recording line numbers.

    Raises:
        ConfigError: the file cannot be read, is not a regular file, is too large, is not
            valid YAML, expands too far, has a cyclic alias or a duplicate key (with the line).
    """
    file = str(source)
    if text is None:
        text = _read_bounded(Path(source), file)
    elif len(text) > MAX_YAML_BYTES:
        raise ConfigError(_too_large(), file=file)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        located = LocatedYaml(data=None, file=file)
        if node is None:
            located.data = {}
        else:
            located.data = _Constructor(loader, located.lines).build(node)
    except ConfigError as err:
        raise err.located(file=file, line=None, field=None) from None
    except RecursionError:
        raise ConfigError(
            f"YAML nested too deeply to read (the limit is {MAX_YAML_DEPTH} levels)", file=file
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise ConfigError(
            f"invalid YAML: {err.problem or err.context}",
            file=file,
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.reader.ReaderError as err:
        character = err.character if isinstance(err.character, str) else chr(err.character)
        raise ConfigError(
            f"invalid YAML: {err.reason} (character #x{ord(character):04x} at offset "
            f"{err.position}); remove it",
            file=file,
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {' '.join(str(err).split())}", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return located


def _too_large() -> str:
    return (
        f"configuration file is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; a pipeline "
        "file holds configuration, not data (point a loader at data files instead)"
    )


def _read_bounded(path: Path, file: str) -> str:
    """The file's text, refusing what is not a regular file or is too large to be config."""
    try:
        if path.is_dir():
            raise ConfigError(f"{file} is a directory, not a configuration file")
        if path.exists() and not path.is_file():
            raise ConfigError(
                f"{file} is not a regular file (a device, FIFO or socket); give a YAML file"
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {file}") from None
    except OSError as err:
        raise ConfigError(f"cannot read configuration file {file}: {err.strerror or err}") from None
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(_too_large(), file=file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"configuration file {file} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None


class _Constructor:
    """Plain data from YAML nodes, bounded.

    Aliases are followed (each expansion counts towards :data:`MAX_YAML_NODES`), an alias inside
    its own anchor is refused, and nesting is limited to :data:`MAX_YAML_DEPTH`.
    """

    def __init__(self, loader: yaml.SafeLoader, lines: dict[Path_, int]) -> None:
        self.loader = loader
        self.lines = lines
        self.built = 0
        self.open: set[int] = set()  # ids of the collection nodes being built (cycle check)
        self.flattened: dict[int, tuple[list[Any], int]] = {}

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.built += 1
        line = node.start_mark.line + 1
        if self.built > MAX_YAML_NODES:
            raise ConfigError(
                f"YAML expands to more than {MAX_YAML_NODES} values (an alias counts each time "
                "it is used); refused. Write the values out or use fewer nested aliases",
                line=line,
                field=_dotted(path),
            )
        if len(path) > MAX_YAML_DEPTH:
            raise ConfigError(
                f"YAML nested more than {MAX_YAML_DEPTH} levels deep",
                line=line,
                field=_dotted(path),
            )
        self.lines.setdefault(path, line)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.open:
                raise ConfigError(
                    "an alias refers to the anchor that contains it (a cycle); configuration "
                    "must be a tree",
                    line=line,
                    field=_dotted(path),
                )
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        return self.loader.construct_object(node, deep=True)

    def _pairs(self, node: yaml.MappingNode) -> tuple[list[Any], int]:
        """The node's pairs with merge keys (``<<: *defaults``) applied, and how many of them
        came from merges (those may be overridden by the node's own keys)."""
        cached = self.flattened.get(id(node))
        if cached is None:
            own = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
            self.loader.flatten_mapping(node)
            cached = (list(node.value), len(node.value) - own)
            self.flattened[id(node)] = cached
        return cached

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        pairs, merged = self._pairs(node)
        result: dict[Any, Any] = {}
        own_keys: set[Any] = set()
        for index, (key_node, value_node) in enumerate(pairs):
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "a mapping key must be a plain value, not a list or mapping",
                    line=key_node.start_mark.line + 1,
                    field=_dotted(path),
                )
            key = self.loader.construct_object(key_node, deep=True)
            if index >= merged and key in own_keys:
                first = self.lines.get((*path, key))
                raise ConfigError(
                    f"duplicate key '{key}' (first on line {first}); keep one",
                    line=key_node.start_mark.line + 1,
                    field=_dotted((*path, key)),
                )
            if index >= merged:
                own_keys.add(key)
            where = (*path, key)  # a name: mypy reads d[(*a, b)] as 3.11-only d[*a, b]
            self.lines[where] = key_node.start_mark.line + 1  # errors point at the key
            result[key] = self.build(value_node, where)
        return result


def _dotted(path: Path_) -> str | None:
    return ".".join(str(p) for p in path) or None


def expand_env_refs(located: LocatedYaml, *, keep: set[Path_] | None = None) -> None:
    """Replace ``${VAR}`` in every string value, in place, except at paths in ``keep``.

    The replacement is an :class:`~rag.core.secrets.EnvValue`: it reads as the value and
    serializes as the reference, so ``PipelineFile.dump()`` never writes a secret out.

    Raises:
        MissingEnvVarError: with the file, line and field of the reference.
    """
    keep = keep or set()

    def walk(value: Any, path: Path_) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and path not in keep and ENV_REFERENCE.search(value):
            try:
                return EnvValue(expand_env(value), reference=value)
            except ConfigError as err:
                raise err.located(
                    file=located.file,
                    line=located.line_of(path),
                    field=".".join(str(p) for p in path),
                ) from None
        return value

    located.data = walk(located.data, ())


def dump_yaml(data: Any) -> str:
    """Plain, block-style YAML with keys in insertion order."""
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text
