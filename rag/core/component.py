"""The component contract.

A component is a plain class:

- ``__init__`` only stores its arguments (they are captured automatically for ``to_dict``);
- models, clients and files are opened in :meth:`Component.warm_up` (or lazily on first use);
- ``run(**inputs) -> dict`` is typed: its parameters are the input sockets, and the class
  attribute ``outputs`` declares the output sockets and their types.

Example:
    >>> from rag.core.component import Component
    >>> class Upper(Component):
    ...     outputs = {"text": str}
    ...     def __init__(self, *, suffix: str = "") -> None:
    ...         self.suffix = suffix
    ...     def run(self, text: str) -> dict:
    ...         return {"text": text.upper() + self.suffix}
    >>> Upper(suffix="!").run(text="hi")
    {'text': 'HI!'}
    >>> Upper(suffix="!").to_dict()["init_parameters"]
    {'suffix': '!'}
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
import pathlib
import re
import types
import typing
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, Union, runtime_checkable

from rag.core.errors import ConfigError, did_you_mean
from rag.core.secrets import EnvValue, Secret


def constructor(cls: type) -> Callable[..., None]:
    """``cls.__init__``, read off the class (mypy flags ``cls.__init__`` on a ``type`` as unsound).

    >>> constructor(int) is int.__init__
    True
    """
    klass: Any = cls
    init: Callable[..., None] = klass.__init__
    return init


_CAPTURING_INITS: weakref.WeakSet[Callable[..., None]] = weakref.WeakSet()
"""The ``__init__`` wrappers :class:`Component` installed (a subclass inheriting one is not
wrapped again)."""


@functools.cache
def _init_signature(cls: type) -> inspect.Signature:
    return inspect.signature(constructor(cls))


class Component:
    """Base class of every pipeline component. See the module docstring."""

    outputs: ClassVar[dict[str, Any]] = {}
    """Output socket names and their types."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        original = cls.__dict__.get("__init__")
        if original is None or original in _CAPTURING_INITS:
            return

        @functools.wraps(original)
        def __init__(self: Component, *args: Any, **kw: Any) -> None:
            if "_init_parameters" not in self.__dict__:
                bound = inspect.signature(original).bind(self, *args, **kw)
                params = dict(bound.arguments)
                params.pop(next(iter(inspect.signature(original).parameters)), None)
                for name, param in inspect.signature(original).parameters.items():
                    if param.kind is inspect.Parameter.VAR_KEYWORD and name in params:
                        params.update(params.pop(name))
                self.__dict__["_init_parameters"] = params
            original(self, *args, **kw)

        _CAPTURING_INITS.add(__init__)  # read above: wrap each __init__ once
        type.__setattr__(cls, "__init__", __init__)  # replaces the method on purpose

    # -- lifecycle -------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load models, open clients and files. Called once before the first ``run``."""

    def run(self, *args: Any, **inputs: Any) -> dict[str, Any]:  # pragma: no cover - abstract
        """Each component declares its own typed inputs (``run(self, query: str)``); this
        ``(*args, **inputs)`` signature lets a type checker accept every such override."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")

    # -- sockets ---------------------------------------------------------------------------
    @classmethod
    def input_sockets(cls) -> dict[str, tuple[Any, bool]]:
        """``{name: (type, required)}`` for every parameter of ``run``."""
        hints = type_hints(cls.run)
        sockets = {}
        for name, param in inspect.signature(cls.run).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            sockets[name] = (hints.get(name, Any), param.default is inspect.Parameter.empty)
        return sockets

    @classmethod
    def output_sockets(cls) -> dict[str, Any]:
        return dict(cls.outputs)

    # -- serialization ---------------------------------------------------------------------
    @property
    def init_parameters(self) -> dict[str, Any]:
        """The arguments this component was built with (explicit and defaulted)."""
        params = dict(self.__dict__.get("_init_parameters", {}))
        cls: type = type(self)  # plain ``type``: mypy sees no __hash__ on type[Component]
        signature = _init_signature(cls)
        for name, param in signature.parameters.items():
            if name == "self" or name in params:
                continue
            if param.default is not inspect.Parameter.empty:
                params[name] = param.default
        return params

    def to_dict(
        self,
        *,
        references: Mapping[int, str] | None = None,
        registry: Any = None,
        resolved: bool = False,
    ) -> dict[str, Any]:
        """``{"type": short name, "init_parameters": {...}}``, plain data only.

        Args:
            references: ``id(component) -> name`` of components shared by name in a pipeline
                file; those are written as ``"@name"`` instead of being nested.
            registry: The registry whose short names are used (default: the default registry).
            resolved: Write values that came from ``${VAR}`` as the values they hold (for
                fingerprints that must change with them), not as the references (the default,
                for files).
        """
        from rag.core.registry import default_registry

        type_name = (registry or default_registry).name_of(type(self))
        if type_name is None:
            type_name = f"{type(self).__module__}:{type(self).__qualname__}"
        params = {
            name: serialize_value(value, references or {}, registry, resolved=resolved)
            for name, value in self.init_parameters.items()
        }
        return {"type": type_name, "init_parameters": params}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Component:
        """Rebuild from ``to_dict()`` output (nested components are built recursively)."""
        params = dict(data.get("init_parameters") or {})
        return build_component(cls, params, field="init_parameters")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.init_parameters.items())
        return f"{type(self).__name__}({params})"


@runtime_checkable
class WarmsUp(Protocol):
    """Something with a ``warm_up()`` to call before first use (every :class:`Component`)."""

    def warm_up(self) -> None: ...


def warm_up_parts(*parts: object) -> None:
    """Warm up the components a component holds, each that has ``warm_up()``.

    Lets a component type what it holds by the part's Protocol (``embedder: Embedder``, which
    does not name ``warm_up``) and still warm it.

    >>> class Model:
    ...     loaded = False
    ...     def warm_up(self) -> None:
    ...         self.loaded = True
    >>> model = Model()
    >>> warm_up_parts(model, "a plain value")
    >>> model.loaded
    True
    """
    for part in parts:
        if isinstance(part, WarmsUp):
            part.warm_up()


def type_hints(func: Any) -> dict[str, Any]:
    """``func``'s resolved type hints, or ``{}`` when they cannot be resolved.

    >>> def run(text: str) -> dict: ...
    >>> type_hints(run)["text"]
    <class 'str'>
    """
    try:
        return typing.get_type_hints(func)
    except Exception:
        return {}


def serialize_value(
    value: Any, references: Mapping[int, str], registry: Any = None, *, resolved: bool = False
) -> Any:
    """Turn an init parameter into YAML-safe data (``${VAR}`` values as their references
    unless ``resolved``)."""
    if isinstance(value, Component):
        if id(value) in references:
            return "@" + references[id(value)]
        return value.to_dict(references=references, registry=registry, resolved=resolved)
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, EnvValue) and not resolved:
        return value.reference  # written as ${VAR}, never as the value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {
            str(k): serialize_value(v, references, registry, resolved=resolved)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [serialize_value(v, references, registry, resolved=resolved) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        return "@" + value  # a literal '@' is written '@@'
    return value


def accepts(annotation: Any, kind: type) -> bool:
    """Whether a parameter annotated ``annotation`` takes a ``kind`` (a union counts).

    >>> accepts(int | None, int), accepts(str, int)
    (True, False)
    """
    if annotation is inspect.Parameter.empty or annotation is Any:
        return False
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(accepts(arg, kind) for arg in typing.get_args(annotation))
    return inspect.isclass(annotation) and issubclass(annotation, kind)


def build_component(
    cls: type,
    params: dict[str, Any],
    *,
    field: str,
    resolve_reference: Any = None,
    registry: Any = None,
    allow_imports: bool = False,
) -> Component:
    """Instantiate ``cls`` from plain parameters, checking names and resolving references.

    Raises:
        ConfigError: an unknown parameter (with the closest valid name), a missing required one,
            or a constructor that rejects a value.
    """
    signature = _init_signature(cls)
    hints = type_hints(constructor(cls))
    accepted = [n for n in signature.parameters if n != "self"]
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    kwargs: dict[str, Any] = {}
    for name, value in params.items():
        if name not in accepted and not var_keyword:
            raise ConfigError(
                f"unknown parameter '{name}' for {cls.__name__}.{did_you_mean(name, accepted)} "
                f"Valid: {', '.join(accepted) or '(none)'}",
                field=f"{field}.{name}",
            )
        kwargs[name] = _deserialize(
            value,
            hints.get(name, Any),
            field=f"{field}.{name}",
            resolve_reference=resolve_reference,
            registry=registry,
            allow_imports=allow_imports,
        )
    missing = [
        n
        for n, p in signature.parameters.items()
        if n != "self"
        and p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        and n not in kwargs
    ]
    if missing:
        raise ConfigError(
            f"{cls.__name__} needs parameter(s) {', '.join(missing)}", field=f"{field}.{missing[0]}"
        )
    for name, value in kwargs.items():
        _check_type(cls, name, value, hints.get(name, Any), field=f"{field}.{name}")
    device = kwargs.get("device")
    if isinstance(device, str) and not _DEVICE.fullmatch(device):
        # Every component that places work (embedders, rerankers, stores) takes these.
        raise ConfigError(
            f"{cls.__name__} device must be auto, cpu, cuda, cuda:N or mps, got {device!r}",
            field=f"{field}.device",
        )
    try:
        component: Component = cls(**kwargs)  # any registered class, Component by contract
        return component
    except ConfigError as err:
        # A component's own check names its parameter ("chunk_size"): place it under ``field``
        # so the pipeline file can report the line of that key.
        own = err.field.split(".")[0] if err.field else None
        if own in accepted:
            err = err.located(file=None, line=None, field=None)
            err.field = f"{field}.{err.field}"
            Exception.__init__(err, err._render())
            raise err from None
        raise err.located(file=None, line=None, field=field) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{cls.__name__} rejected its parameters: {err}", field=field) from err


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

_SIMPLE_TYPES: dict[type, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _simple_types(annotation: Any) -> set[type] | None:
    """The plain types ``annotation`` allows (``int | None`` -> {int, NoneType}), or ``None``
    when it allows something richer (lists, components, ...), which is checked elsewhere."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        allowed: set[type] = set()
        for arg in typing.get_args(annotation):
            part = _simple_types(arg)
            if part is None:
                return None
            allowed |= part
        return allowed
    if annotation is type(None):
        return {type(None)}
    if annotation in _SIMPLE_TYPES:
        return {annotation}
    return None


def input_type_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` cannot go to a socket annotated ``annotation`` (plain types only), or
    ``None`` when it can (or the annotation is richer than plain types).

    Example:
        >>> input_type_problem("ten", int)
        'must be an integer'
        >>> input_type_problem(10, int | None) is None
        True
    """
    allowed = _simple_types(annotation)
    if allowed is None or _type_ok(value, allowed):
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        return None
    return "must be " + _wanted(allowed)


def _wanted(allowed: set[type]) -> str:
    """``"an integer or null"``: the plain types first, null last."""
    names = sorted(_SIMPLE_TYPES[k] for k in allowed if k in _SIMPLE_TYPES)
    return " or ".join(names + (["null"] if type(None) in allowed else []))


def _type_ok(value: Any, allowed: set[type]) -> bool:
    return any(
        (kind is type(None) and value is None)
        or (kind is bool and isinstance(value, bool))
        or (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (kind is str and isinstance(value, str))
        for kind in allowed
    )


def _check_type(cls: type, name: str, value: Any, annotation: Any, *, field: str) -> None:
    """Refuse a value whose type the parameter's annotation cannot take, naming both."""
    allowed = _simple_types(annotation)
    if allowed is None:
        return
    if _type_ok(value, allowed):
        if isinstance(value, float) and not math.isfinite(value) and float in allowed:
            raise ConfigError(
                f"{cls.__name__} parameter '{name}' must be a finite number, got {value}",
                field=field,
            )
        return
    wanted = _wanted(allowed)
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    raise ConfigError(
        f"{cls.__name__} parameter '{name}' must be {wanted}, got {shown}", field=field
    )


def _deserialize(
    value: Any,
    annotation: Any,
    *,
    field: str,
    resolve_reference: Any,
    registry: Any,
    allow_imports: bool,
) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value.startswith("@@"):
            return value[1:]
        if resolve_reference is None:
            raise ConfigError(
                f"reference '{value}' can only be used inside a pipeline file", field=field
            )
        return resolve_reference(value[1:], field)
    if accepts(annotation, Secret) and isinstance(value, str):
        return Secret.parse(value)
    if isinstance(value, Mapping) and "type" in value and takes_component(annotation):
        from rag.core.registry import default_registry

        reg = registry or default_registry
        sub_cls = reg.resolve(str(value["type"]), allow_imports=allow_imports)
        return build_component(
            sub_cls,
            dict(value.get("init_parameters") or {}),
            field=f"{field}.init_parameters",
            resolve_reference=resolve_reference,
            registry=reg,
            allow_imports=allow_imports,
        )
    if isinstance(value, list) and _accepts_component_list(annotation):
        return [
            _deserialize(
                item,
                Component,
                field=f"{field}[{i}]",
                resolve_reference=resolve_reference,
                registry=registry,
                allow_imports=allow_imports,
            )
            for i, item in enumerate(value)
        ]
    return value


def _accepts_component_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_accepts_component_list(a) for a in typing.get_args(annotation))
    if origin in (list, typing.get_origin(typing.Sequence[int])):
        args = typing.get_args(annotation)
        return bool(args) and takes_component(args[0])
    return False


def takes_component(annotation: Any) -> bool:
    """Whether a parameter annotated ``annotation`` takes a component: a :class:`Component`
    subclass or an extension-point Protocol (``Embedder``, ``VectorStore``, ...), alone or in a
    union. Such a parameter is built from a ``{type: ..., init_parameters: ...}`` mapping.

    >>> from rag.core.protocols import Embedder
    >>> takes_component(Embedder), takes_component(Embedder | None), takes_component(str)
    (True, True, False)
    """
    if accepts(annotation, Component):
        return True
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return any(takes_component(arg) for arg in typing.get_args(annotation))
    # A Protocol lists Protocol among its own bases; a class implementing one does not.
    return inspect.isclass(annotation) and typing.Protocol in annotation.__bases__


def types_compatible(sender: Any, receiver: Any) -> bool:
    """Whether a value of type ``sender`` may flow into a socket of type ``receiver``."""
    if sender is Any or receiver is Any or sender == receiver:
        return True
    r_origin = typing.get_origin(receiver)
    if r_origin in (Union, types.UnionType):
        return any(types_compatible(sender, arg) for arg in typing.get_args(receiver))
    s_origin = typing.get_origin(sender)
    if s_origin in (Union, types.UnionType):
        return all(types_compatible(arg, receiver) for arg in typing.get_args(sender))
    if s_origin is not None and r_origin is None and inspect.isclass(receiver):
        return inspect.isclass(s_origin) and issubclass(s_origin, receiver)
    if s_origin is not None or r_origin is not None:
        if s_origin != r_origin:
            return False
        s_args, r_args = typing.get_args(sender), typing.get_args(receiver)
        if not s_args or not r_args:
            return True
        return len(s_args) == len(r_args) and all(
            types_compatible(s, r) for s, r in zip(s_args, r_args)
        )
    if inspect.isclass(sender) and inspect.isclass(receiver):
        return issubclass(sender, receiver)
    return False
