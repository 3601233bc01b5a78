"""Small components for testing the pipeline machinery without models."""

from __future__ import annotations

from typing import Any

from rag.core.component import Component
from rag.core.registry import Registry
from rag.core.secrets import Secret


class Add(Component):
    outputs = {"value": int}

    def __init__(self, *, amount: int = 1) -> None:
        self.amount = amount

    def run(self, value: int) -> dict[str, Any]:
        return {"value": value + self.amount}


class Join(Component):
    outputs = {"text": str}

    def __init__(self, *, separator: str = " ") -> None:
        self.separator = separator

    def run(self, left: int, right: int) -> dict[str, Any]:
        return {"text": f"{left}{self.separator}{right}"}


class Shout(Component):
    outputs = {"text": str}

    def run(self, text: str) -> dict[str, Any]:
        return {"text": text.upper()}


class Holder(Component):
    """Holds a reference to another component and a secret."""

    outputs = {"value": int}

    def __init__(self, *, inner: Component, token: Secret | None = None, label: str = "") -> None:
        self.inner = inner
        self.token = token
        self.label = label
        self.warmed = 0

    def warm_up(self) -> None:
        self.warmed += 1

    def run(self, value: int) -> dict[str, Any]:
        return self.inner.run(value=value)


def toy_registry() -> Registry:
    registry = Registry()
    for name, cls in {
        "toy.add": Add,
        "toy.join": Join,
        "toy.shout": Shout,
        "toy.holder": Holder,
    }.items():
        registry.register(name, cls)
    return registry
