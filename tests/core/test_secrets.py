import pytest

from rag.core.errors import MissingEnvVarError
from rag.core.secrets import Secret, expand_env

pytestmark = pytest.mark.unit


def test_secret_resolves_lazily_and_never_prints_value(monkeypatch):
    monkeypatch.setenv("RAG_TEST_KEY", "s3cret")
    secret = Secret.parse("${RAG_TEST_KEY}")
    assert secret.resolve() == "s3cret"
    assert "s3cret" not in repr(secret) + str(secret)
    assert str(secret) == "${RAG_TEST_KEY}"


def test_missing_secret_names_the_variable(monkeypatch):
    monkeypatch.delenv("RAG_TEST_MISSING", raising=False)
    with pytest.raises(MissingEnvVarError, match="RAG_TEST_MISSING"):
        Secret("RAG_TEST_MISSING").resolve()
    assert Secret("RAG_TEST_MISSING").resolve(required=False) is None


def test_expand_env_with_default(monkeypatch):
    monkeypatch.setenv("RAG_TEST_DIR", "/data")
    monkeypatch.delenv("RAG_TEST_NONE", raising=False)
    assert expand_env("${RAG_TEST_DIR}/x") == "/data/x"
    assert expand_env("${RAG_TEST_NONE:-fallback}") == "fallback"
    with pytest.raises(MissingEnvVarError, match=r"RAG_TEST_NONE.*export it"):
        expand_env("${RAG_TEST_NONE}")
