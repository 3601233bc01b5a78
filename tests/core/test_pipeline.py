import textwrap

import pytest

from rag.core.errors import ConfigError, MissingEnvVarError, PipelineError, UnknownComponentError
from rag.core.pipeline import Pipeline, PipelineFile
from tests.core.toys import Add, Holder, Join, Shout, toy_registry

pytestmark = pytest.mark.unit


def load(text, tmp_path, **kwargs):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    return PipelineFile.load(path, registry=toy_registry(), **kwargs), str(path)


def test_linear_pipeline_infers_connections():
    p = Pipeline()
    p.add_component("a", Add(amount=1))
    p.add_component("b", Add(amount=10))
    assert p.run(value=1) == {"b": {"value": 12}}
    assert [str(c) for c in p.connections] == ["a.value -> b.value"]


def test_graph_with_explicit_connections():
    p = Pipeline()
    p.add_component("x", Add(amount=1))
    p.add_component("y", Add(amount=2))
    p.add_component("join", Join(separator="+"))
    p.connect("x.value", "join.left")
    p.connect("y", "join.right")
    assert p.run({"x": {"value": 0}, "y": {"value": 0}}) == {"join": {"text": "1+2"}}


def test_connect_unknown_socket_names_components_and_options():
    p = Pipeline()
    p.add_component("a", Add())
    p.add_component("j", Join())
    with pytest.raises(
        PipelineError, match=r"'j' \(Join\) has no input 'lft'.*Did you mean 'left'"
    ):
        p.connect("a.value", "j.lft")
    with pytest.raises(PipelineError, match="no component named 'z'"):
        p.connect("a.value", "z.left")


def test_type_mismatch_is_refused():
    p = Pipeline()
    p.add_component("a", Add())
    p.add_component("s", Shout())
    with pytest.raises(PipelineError, match="type mismatch.*a.value is int.*s.text takes str"):
        p.connect("a.value", "s.text")


def test_cycle_is_detected_before_running():
    p = Pipeline()
    p.add_component("a", Add())
    p.add_component("b", Add())
    p.connect("a.value", "b.value")
    p.connect("b.value", "a.value")
    with pytest.raises(PipelineError, match="cycle"):
        p.validate()


def test_missing_input_and_unknown_input_are_errors():
    p = Pipeline()
    p.add_component("a", Add())
    with pytest.raises(PipelineError, match="needs input 'value'"):
        p.run()
    with pytest.raises(PipelineError, match="no component takes input"):
        p.run(value=1, nonsense=2)


def test_yaml_round_trip_equals_python(tmp_path):
    app, _ = load(
        """
        components:
          inner: {type: toy.add, init_parameters: {amount: 3}}
          holder: {type: toy.holder, init_parameters: {inner: "@inner", label: "@@literal"}}
          last: {type: toy.add}
        pipelines:
          main: {components: [holder, last]}
        """,
        tmp_path,
    )
    python = Pipeline("main")
    inner = Add(amount=3)
    python.add_component("holder", Holder(inner=inner, label="@literal"))
    python.add_component("last", Add())
    loaded = app.pipeline("main")
    assert loaded == python
    assert loaded.run(value=1) == {"last": {"value": 5}}
    assert loaded.get_component("holder").inner is app.components["inner"]
    again = PipelineFile.load(tmp_path / "p.yaml", registry=toy_registry(), text=app.dump())
    assert again.pipeline("main") == loaded
    assert again.to_dict() == app.to_dict()


def test_shared_component_is_one_object_across_pipelines(tmp_path):
    app, _ = load(
        """
        components:
          inner: {type: toy.add}
          h1: {type: toy.holder, init_parameters: {inner: "@inner"}}
          h2: {type: toy.holder, init_parameters: {inner: "@inner"}}
        pipelines:
          one: [h1]
          two: [h2]
        """,
        tmp_path,
    )
    assert app.components["h1"].inner is app.components["h2"].inner


def test_secret_parameter_keeps_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_TOKEN", "value")
    app, _ = load(
        """
        components:
          inner: {type: toy.add}
          h: {type: toy.holder, init_parameters: {inner: "@inner", token: "${TOY_TOKEN}"}}
        """,
        tmp_path,
    )
    assert app.components["h"].token.resolve() == "value"
    assert "${TOY_TOKEN}" in app.dump() and "value" not in app.dump().replace("value:", "")


@pytest.mark.parametrize(
    ("text", "error", "line", "fragment"),
    [
        ("components:\n  a: {type: toy.add\n", ConfigError, 3, "invalid YAML"),
        (
            "components:\n  a:\n    type: toy.ad\n",
            UnknownComponentError,
            3,
            "unknown component type 'toy.ad'.*Did you mean 'toy.add'",
        ),
        (
            "components:\n  a:\n    type: toy.add\n    init_parameters:\n      amont: 2\n",
            ConfigError,
            5,
            "unknown parameter 'amont'.*Did you mean 'amount'",
        ),
        (
            "components:\n  a: {type: toy.add}\n  b: {type: toy.join}\n"
            "connections:\n  - a.value -> b.lft\n",
            PipelineError,
            5,
            "has no input 'lft'",
        ),
        (
            "components:\n  a: {type: toy.add}\n  b: {type: toy.add}\n"
            "connections:\n  - a.value -> b.value\n  - b.value -> a.value\n",
            PipelineError,
            None,
            "cycle",
        ),
        (
            "components:\n  a:\n    type: toy.add\n    init_parameters:\n      amount: ${NOPE_VAR}\n",
            MissingEnvVarError,
            5,
            "NOPE_VAR is not set",
        ),
        (
            "components:\n  a:\n    type: some.module.Class\n",
            UnknownComponentError,
            3,
            "refused by default",
        ),
        (
            "components:\n  a: {type: toy.add}\npipelines:\n  p: [a, b]\n",
            PipelineError,
            4,
            "unknown component 'b'",
        ),
        (
            "components:\n  h:\n    type: toy.holder\n    init_parameters:\n      inner: '@nothing'\n",
            ConfigError,
            5,
            "reference '@nothing' names no component",
        ),
        ("compnents:\n  a: {type: toy.add}\n", ConfigError, 1, "Did you mean 'components'"),
    ],
)
def test_bad_yaml_is_located(tmp_path, monkeypatch, text, error, line, fragment):
    monkeypatch.delenv("NOPE_VAR", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error, match=fragment) as info:
        PipelineFile.load(path, registry=toy_registry())
    assert info.value.file == str(path)
    if line is not None:
        assert info.value.line == line, str(info.value)
    assert str(path) in str(info.value)


def test_dotted_import_allowed_only_when_opted_in(tmp_path):
    text = "components:\n  a:\n    type: tests.core.toys:Add\n"
    with pytest.raises(UnknownComponentError):
        load(text, tmp_path)
    app, _ = load(text, tmp_path, allow_imports=True)
    assert isinstance(app.components["a"], Add)


class _Closing(Add):
    """A toy component that holds a resource."""

    def __init__(self, *, amount: int = 1, fail: bool = False) -> None:
        super().__init__(amount=amount)
        self.fail = fail
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        if self.fail:
            raise OSError(f"cannot close {self.amount}")


def test_closing_a_pipeline_file_closes_every_closable_component_nested_ones_too():
    nested, failing, top = _Closing(amount=1), _Closing(amount=2, fail=True), _Closing(amount=3)
    loaded = PipelineFile(
        components={"holder": Holder(inner=nested), "failing": failing, "top": top}
    )
    with pytest.raises(OSError, match="cannot close 2"):
        loaded.close()  # the others are closed before the failure is raised
    assert (nested.closed, failing.closed, top.closed) == (1, 1, 1)
    failing.fail = False
    loaded.close()
    assert (nested.closed, failing.closed, top.closed) == (2, 2, 2)
