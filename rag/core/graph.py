"""The pipeline graph: named components joined by typed connections, validated before running.

A :class:`Pipeline` is built in Python (``add_component``, ``connect``) or loaded from a pipeline
file (:mod:`rag.core.pipeline_file`); both build the same object. A linear pipeline may omit its
connections: each component then feeds the next through the sockets whose names and types match.

Example:
    >>> from rag.core.graph import Pipeline
    >>> from rag.core.component import Component
    >>> class Add(Component):
    ...     outputs = {"value": int}
    ...     def __init__(self, *, amount: int = 1) -> None:
    ...         self.amount = amount
    ...     def run(self, value: int) -> dict:
    ...         return {"value": value + self.amount}
    >>> p = Pipeline()
    >>> p.add_component("one", Add(amount=1))
    >>> p.add_component("ten", Add(amount=10))
    >>> p.connect("one.value", "ten.value")
    >>> p.run({"one": {"value": 0}})
    {'ten': {'value': 11}}
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.component import Component, input_type_problem, types_compatible
from rag.core.errors import PipelineError, did_you_mean
from rag.core.registry import Registry, default_registry
from rag.core.tracing import tracer_for


@dataclass(frozen=True)
class Connection:
    """``sender.output -> receiver.input``."""

    sender: str
    output: str
    receiver: str
    input: str

    def __str__(self) -> str:
        return f"{self.sender}.{self.output} -> {self.receiver}.{self.input}"

    def to_dict(self) -> dict[str, str]:
        return {
            "sender": f"{self.sender}.{self.output}",
            "receiver": f"{self.receiver}.{self.input}",
        }


def _split_socket(text: str, role: str) -> tuple[str, str | None]:
    name, _, socket = text.partition(".")
    if not name:
        raise PipelineError(f"{role} '{text}' must look like 'component' or 'component.socket'")
    return name, socket or None


class Pipeline:
    """A validated graph of named components. See the module docstring for the YAML form."""

    def __init__(
        self,
        name: str = "default",
        *,
        registry: Registry | None = None,
        tracer_provider: Any | None = None,
    ) -> None:
        self.name = name
        self.registry = registry or default_registry
        self.tracer_provider = tracer_provider
        """OpenTelemetry provider for a span per component run (default: the environment's;
        see :mod:`rag.core.tracing`)."""
        self._components: dict[str, Component] = {}
        self._connections: list[Connection] = []
        self._explicit_connections = False
        self._warmed: set[str] = set()

    # -- building ----------------------------------------------------------------------------
    def add_component(self, name: str, component: Component) -> None:
        """Add ``component`` under ``name`` (unique, no dots)."""
        if not name or "." in name:
            raise PipelineError(f"component name '{name}' must be non-empty and contain no dot")
        if name in self._components:
            raise PipelineError(f"a component named '{name}' is already in the pipeline")
        if not isinstance(component, Component):
            raise PipelineError(f"'{name}' is a {type(component).__name__}, not a rag Component")
        self._components[name] = component

    def connect(self, sender: str, receiver: str) -> None:
        """Connect ``"a.output"`` to ``"b.input"``; a socket name may be left out when unique."""
        sender_name, output = _split_socket(sender, "sender")
        receiver_name, input_ = _split_socket(receiver, "receiver")
        for name in (sender_name, receiver_name):
            if name not in self._components:
                raise PipelineError(
                    f"connection '{sender} -> {receiver}': no component named '{name}'."
                    f"{did_you_mean(name, self._components)} "
                    f"Components: {', '.join(self._components) or '(none)'}"
                )
        sender_cls = type(self._components[sender_name])
        receiver_cls = type(self._components[receiver_name])
        outputs = sender_cls.output_sockets()
        inputs = receiver_cls.input_sockets()
        if output is None:
            output = self._only(sender_name, list(outputs), "output")
        if input_ is None:
            input_ = self._only(receiver_name, list(inputs), "input")
        if output not in outputs:
            raise PipelineError(
                f"connection '{sender} -> {receiver}': '{sender_name}' "
                f"({sender_cls.__name__}) has no output '{output}'.{did_you_mean(output, outputs)} "
                f"Outputs: {', '.join(outputs) or '(none)'}"
            )
        if input_ not in inputs:
            raise PipelineError(
                f"connection '{sender} -> {receiver}': '{receiver_name}' "
                f"({receiver_cls.__name__}) has no input '{input_}'.{did_you_mean(input_, inputs)} "
                f"Inputs: {', '.join(inputs) or '(none)'}"
            )
        if not types_compatible(outputs[output], inputs[input_][0]):
            raise PipelineError(
                f"connection '{sender} -> {receiver}': type mismatch, "
                f"{sender_name}.{output} is {_type_name(outputs[output])} but "
                f"{receiver_name}.{input_} takes {_type_name(inputs[input_][0])}"
            )
        for existing in self._connections:
            if (existing.receiver, existing.input) == (receiver_name, input_):
                raise PipelineError(
                    f"connection '{sender} -> {receiver}': {receiver_name}.{input_} is already "
                    f"fed by {existing.sender}.{existing.output}"
                )
        self._connections.append(Connection(sender_name, output, receiver_name, input_))
        self._explicit_connections = True

    @staticmethod
    def _only(component: str, names: list[str], kind: str) -> str:
        if len(names) != 1:
            raise PipelineError(
                f"'{component}' has {len(names)} {kind}s ({', '.join(names)}); name one as "
                f"'{component}.<{kind}>'"
            )
        return names[0]

    @property
    def components(self) -> dict[str, Component]:
        return dict(self._components)

    @property
    def explicit_connections(self) -> bool:
        """Whether the connections were given (``connect``), not inferred from a linear order."""
        return self._explicit_connections

    @property
    def connections(self) -> list[Connection]:
        self._infer_linear_connections()
        return list(self._connections)

    def get_component(self, name: str) -> Component:
        try:
            return self._components[name]
        except KeyError:
            raise PipelineError(
                f"no component named '{name}' in pipeline '{self.name}'."
                f"{did_you_mean(name, self._components)}"
            ) from None

    # -- validation ----------------------------------------------------------------------------
    def _infer_linear_connections(self) -> None:
        if self._explicit_connections or self._connections or len(self._components) < 2:
            return
        names = list(self._components)
        inferred: list[Connection] = []
        for sender_name, receiver_name in itertools.pairwise(names):
            outputs = type(self._components[sender_name]).output_sockets()
            inputs = type(self._components[receiver_name]).input_sockets()
            pairs = [
                (o, o)
                for o in outputs
                if o in inputs and types_compatible(outputs[o], inputs[o][0])
            ]
            if not pairs:
                required = [n for n, (_, req) in inputs.items() if req]
                if len(outputs) == 1 and len(required) == 1:
                    (out, out_type), target = next(iter(outputs.items())), required[0]
                    if types_compatible(out_type, inputs[target][0]):
                        pairs = [(out, target)]
            if not pairs:
                raise PipelineError(
                    f"pipeline '{self.name}': cannot connect '{sender_name}' to '{receiver_name}' "
                    f"automatically ({sender_name} outputs {', '.join(outputs) or 'nothing'}; "
                    f"{receiver_name} takes {', '.join(inputs) or 'nothing'}); "
                    "list the connections explicitly"
                )
            inferred += [Connection(sender_name, o, receiver_name, i) for o, i in pairs]
        self._connections = inferred

    def validate(self) -> None:
        """Check the graph before anything runs.

        Raises:
            PipelineError: a cycle, or sockets that cannot be connected, naming the components.
        """
        self._infer_linear_connections()
        self._topological_order()

    def _topological_order(self) -> list[str]:
        incoming: dict[str, set[str]] = {name: set() for name in self._components}
        for c in self._connections:
            incoming[c.receiver].add(c.sender)
        order: list[str] = []
        ready = [n for n in self._components if not incoming[n]]
        while ready:
            name = ready.pop(0)
            order.append(name)
            for other in self._components:
                if name in incoming[other]:
                    incoming[other].discard(name)
                    if not incoming[other] and other not in order and other not in ready:
                        ready.append(other)
        if len(order) != len(self._components):
            cyclic = [n for n in self._components if n not in order]
            raise PipelineError(
                f"pipeline '{self.name}' has a cycle through: {' -> '.join(cyclic)}"
            )
        return order

    def unconnected_inputs(self) -> dict[str, dict[str, tuple[Any, bool]]]:
        """Inputs that must (or may) be supplied to :meth:`run`, per component."""
        self._infer_linear_connections()
        fed = {(c.receiver, c.input) for c in self._connections}
        result: dict[str, dict[str, tuple[Any, bool]]] = {}
        for name, component in self._components.items():
            free = {
                socket: spec
                for socket, spec in type(component).input_sockets().items()
                if (name, socket) not in fed
            }
            if free:
                result[name] = free
        return result

    # -- running -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Warm up every component once (models load here, not in ``__init__``)."""
        for name, component in self._components.items():
            if name not in self._warmed:
                component.warm_up()
                self._warmed.add(name)

    def run(
        self,
        data: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        include_outputs_from: Iterable[str] = (),
        **inputs: Any,
    ) -> dict[str, dict[str, Any]]:
        """Run the graph once.

        Args:
            data: ``{component: {input: value}}``.
            include_outputs_from: components whose outputs are returned even when connected.
            **inputs: values given to every component with a free input of that name.

        Returns:
            ``{component: {output: value}}`` for outputs that no connection consumed.

        Raises:
            PipelineError: an unknown input or a required input that nothing supplies.
        """
        self.validate()
        order = self._topological_order()
        free = self.unconnected_inputs()
        pending: dict[str, dict[str, Any]] = {name: {} for name in self._components}
        for name, values in (data or {}).items():
            if name not in self._components:
                raise PipelineError(
                    f"run(): no component named '{name}'.{did_you_mean(name, self._components)}"
                )
            for socket, value in values.items():
                if socket not in free.get(name, {}):
                    raise PipelineError(
                        f"run(): '{name}' has no free input '{socket}'. "
                        f"Free inputs: {', '.join(free.get(name, {})) or '(none)'}"
                    )
                pending[name][socket] = value
        used = set()
        for key, value in inputs.items():
            for name, sockets in free.items():
                if key in sockets:
                    pending[name].setdefault(key, value)
                    used.add(key)
        unknown = set(inputs) - used
        if unknown:
            all_free = sorted({s for sockets in free.values() for s in sockets})
            raise PipelineError(
                f"run(): no component takes input(s) {', '.join(sorted(unknown))}. "
                f"Free inputs: {', '.join(all_free) or '(none)'}"
            )
        for name, values in pending.items():
            sockets = type(self._components[name]).input_sockets()
            for socket, value in values.items():
                problem = input_type_problem(value, sockets[socket][0])
                if problem:
                    raise PipelineError(
                        f"run(): input '{socket}' of '{name}' {problem}, got {value!r:.80}"
                    )
        self.warm_up()
        include = set(include_outputs_from)
        results: dict[str, dict[str, Any]] = {}
        tracing = tracer_for(self.tracer_provider)
        with tracing.span("ragline.pipeline", {"ragline.pipeline": self.name}):
            for name in order:
                component = self._components[name]
                for socket, (_, required) in type(component).input_sockets().items():
                    if required and socket not in pending[name]:
                        raise PipelineError(
                            f"run(): component '{name}' needs input '{socket}', which no "
                            "connection or argument supplies"
                        )
                with tracing.span(
                    "ragline.component",
                    {"ragline.pipeline": self.name, "ragline.component": name},
                ):
                    outputs = component.run(**pending[name])
                if not isinstance(outputs, Mapping):
                    raise PipelineError(
                        f"component '{name}' returned {type(outputs).__name__}, not a dict"
                    )
                consumed = set()
                for c in self._connections:
                    if c.sender == name and c.output in outputs:
                        pending[c.receiver][c.input] = outputs[c.output]
                        consumed.add(c.output)
                left = {k: v for k, v in outputs.items() if k not in consumed or name in include}
                if left:
                    results[name] = left
        return results

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The pipeline-file form with this one pipeline."""
        from rag.core.pipeline_file import PipelineFile  # imports this module: import here

        return PipelineFile(pipelines={self.name: self}, registry=self.registry).to_dict()

    def dump(self, path: str | Path | None = None) -> str:
        """YAML text (written to ``path`` when given) that :meth:`load` turns back into an equal
        pipeline."""
        from rag.core.pipeline_file import PipelineFile  # imports this module: import here

        return PipelineFile(pipelines={self.name: self}, registry=self.registry).dump(path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        name: str | None = None,
        *,
        registry: Registry | None = None,
        allow_imports: bool = False,
    ) -> Pipeline:
        """Load pipeline ``name`` (default: the first in the file) from a pipeline file."""
        from rag.core.pipeline_file import PipelineFile  # imports this module: import here

        return PipelineFile.load(path, registry=registry, allow_imports=allow_imports).pipeline(
            name
        )

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], name: str | None = None, *, registry: Registry | None = None
    ) -> Pipeline:
        """The pipeline ``name`` (default: the first) of a pipeline-file mapping."""
        from rag.core.pipeline_file import PipelineFile  # imports this module: import here

        return PipelineFile.from_dict(data, registry=registry).pipeline(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pipeline):
            return NotImplemented
        from rag.core.pipeline_file import PipelineFile  # imports this module: import here

        # Compare with one registry so equal graphs are equal whichever registry built them.
        theirs = PipelineFile(pipelines={other.name: other}, registry=self.registry).to_dict()
        return self.to_dict() == theirs

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, components={list(self._components)})"


def _type_name(tp: Any) -> str:
    # A class has a __name__; typing constructs (list[int], int | None) may not: print those.
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")  # typing objects vary
