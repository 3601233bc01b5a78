import pytest

from rag.core.component import Component, build_component, types_compatible
from rag.core.documents import Chunk, Document
from rag.core.errors import ConfigError
from rag.core.secrets import Secret
from tests.core.toys import Add, Holder

pytestmark = pytest.mark.unit


def test_init_parameters_are_captured_with_defaults():
    assert Add().init_parameters == {"amount": 1}
    assert Add(amount=5).to_dict()["init_parameters"] == {"amount": 5}


def test_sockets_come_from_run_signature_and_outputs():
    assert Add.input_sockets() == {"value": (int, True)}
    assert Add.output_sockets() == {"value": int}


def test_nested_component_and_secret_serialize_as_data():
    holder = Holder(inner=Add(amount=2), token=Secret("API_KEY"))
    params = holder.to_dict()["init_parameters"]
    assert params["token"] == "${API_KEY}"
    assert params["inner"]["init_parameters"] == {"amount": 2}


def test_equality_is_by_configuration():
    assert Add(amount=1) == Add()
    assert Add(amount=1) != Add(amount=2)


def test_build_component_rejects_unknown_parameter_with_suggestion():
    with pytest.raises(ConfigError, match="unknown parameter 'amout'.*Did you mean 'amount'"):
        build_component(Add, {"amout": 3}, field="init_parameters")


def test_build_component_reports_missing_required_parameter():
    with pytest.raises(ConfigError, match="needs parameter"):
        build_component(Holder, {}, field="init_parameters")


@pytest.mark.parametrize(
    ("sender", "receiver", "ok"),
    [
        (int, int, True),
        (list[Chunk], list[Chunk], True),
        (list[Chunk], list[Document], False),
        (int, str, False),
        (int, int | None, True),
        (list[Chunk], list, True),
        (str, "typing.Any", True),
    ],
)
def test_types_compatible(sender, receiver, ok):
    from typing import Any

    receiver = Any if receiver == "typing.Any" else receiver
    assert types_compatible(sender, receiver) is ok


def test_plain_component_base_run_is_abstract():
    with pytest.raises(NotImplementedError):
        Component().run()
