"""YAML reading that remembers where every value came from, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rag.core.errors import ConfigError
from rag.core.secrets import ENV_REFERENCE, expand_env

Path_ = tuple[Any, ...]


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
        ConfigError: the file cannot be read or is not valid YAML (with the line of the problem).
    """
    file = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {file}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read configuration file {file}: {err}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        located = LocatedYaml(data=None, file=file)
        located.data = {} if node is None else _construct(loader, node, (), located.lines)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise ConfigError(
            f"invalid YAML: {err.problem or err.context}",
            file=file,
            line=mark.line + 1 if mark else None,
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {err}", file=file) from None
    finally:
        loader.dispose()
    return located


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise ConfigError(
                    f"duplicate key '{key}'",
                    line=key_node.start_mark.line + 1,
                    field=".".join(str(p) for p in (*path, key)),
                )
            lines[(*path, key)] = key_node.start_mark.line + 1  # errors point at the key
            result[key] = _construct(loader, value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def expand_env_refs(located: LocatedYaml, *, keep: set[Path_] | None = None) -> None:
    """Replace ``${VAR}`` in every string value, in place, except at paths in ``keep``.

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
                return expand_env(value)
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
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
