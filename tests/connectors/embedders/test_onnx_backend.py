"""backend: onnx of embedder.sentence_transformers: a local export run with ONNX Runtime."""

import importlib.util
import shutil
import sys

import numpy as np
import pytest

from rag.connectors.embedders import onnx_runtime
from rag.connectors.embedders.sentence_transformers import SentenceTransformersEmbedder
from rag.core.errors import ConfigError, MissingDependencyError

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX, reason="needs onnxruntime and onnx: pip install 'ragline[onnx]'"
)

TEXTS = [
    "FAISS",
    "The cat sat on the mat.",
    "boundary layer transition on a swept wing at supersonic speed " * 4,
    "word " * 400,  # longer than max_seq_length (256): truncated the same way by both backends
    "Stock markets fell sharply.",
    "an experimental study of heat transfer in a laminar flow over a flat plate",
]


def _onnx_embedder(onnx_dir, **kwargs) -> SentenceTransformersEmbedder:
    return SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2", device="cpu", backend="onnx", onnx_dir=str(onnx_dir), **kwargs
    )


def _count_exports(monkeypatch) -> list[object]:
    calls: list[object] = []
    real = onnx_runtime.export_onnx

    def counting(st_model, target):
        calls.append(target)
        return real(st_model, target)

    monkeypatch.setattr(onnx_runtime, "export_onnx", counting)
    return calls


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_dir):
    """An onnx-backend embedder exported once into a module-scoped cache directory; a batch
    size of 2 sends the test texts through the length-sorted, prefetching batch path."""
    if not HAVE_ONNX:
        pytest.skip("needs onnxruntime and onnx: pip install 'ragline[onnx]'")
    embedder = _onnx_embedder(onnx_dir, batch_size=2)
    embedder.warm_up()
    return embedder


@pytest.mark.unit
def test_missing_onnxruntime_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    embedder = _onnx_embedder(tmp_path)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragline\[onnx\]'"):
        embedder.warm_up()
    assert not list(tmp_path.iterdir())  # failed before exporting anything


@needs_onnx
@pytest.mark.integration
def test_onnx_vectors_match_torch(embedder, onnx_embedder):
    assert onnx_embedder.dimension == embedder.dimension == 384
    assert onnx_embedder.max_seq_length == embedder.max_seq_length < 300
    torch_vectors = embedder.embed_documents(TEXTS)
    onnx_vectors = onnx_embedder.embed_documents(TEXTS)
    assert onnx_vectors.shape == (len(TEXTS), 384) and onnx_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(torch_vectors * onnx_vectors, axis=1)
    assert cosines.min() >= 0.9999, cosines
    query = onnx_embedder.embed_query("Where did the cat sit?")  # one batch, no thread
    assert float(query @ embedder.embed_query("Where did the cat sit?")) >= 0.9999
    assert onnx_embedder.embed_documents([]).shape == (0, 384)


@needs_onnx
@pytest.mark.integration
def test_export_is_reused(onnx_embedder, onnx_dir, monkeypatch):
    assert onnx_embedder._onnx.exported
    model_file = onnx_embedder._onnx.target / onnx_runtime.MODEL_FILE
    assert model_file.parent.parent == onnx_dir
    assert [p.name for p in onnx_dir.iterdir()] == [model_file.parent.name]  # no temp left
    before = model_file.stat().st_mtime_ns
    exports = _count_exports(monkeypatch)
    again = _onnx_embedder(onnx_dir)
    again.warm_up()
    assert exports == [] and not again._onnx.exported
    assert model_file.stat().st_mtime_ns == before
    assert float(again.embed_query("cat") @ onnx_embedder.embed_query("cat")) > 0.99999


@needs_onnx
@pytest.mark.integration
def test_truncated_export_is_exported_again(onnx_embedder, tmp_path, monkeypatch):
    target = tmp_path / onnx_embedder._onnx.target.name
    shutil.copytree(onnx_embedder._onnx.target, target)
    model_file = target / onnx_runtime.MODEL_FILE
    with model_file.open("r+b") as handle:  # as if the process died while writing it
        handle.truncate(model_file.stat().st_size // 2)
    assert not onnx_runtime.manifest_ok(target)
    exports = _count_exports(monkeypatch)
    repaired = _onnx_embedder(tmp_path)
    repaired.warm_up()
    assert exports == [target] and repaired._onnx.exported
    assert onnx_runtime.manifest_ok(target)
    vectors = repaired.embed_documents(TEXTS[:3])
    assert np.allclose(vectors, onnx_embedder.embed_documents(TEXTS[:3]), atol=1e-5)


@pytest.mark.unit
def test_export_key_follows_model_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    first = onnx_runtime.export_key(tmp_path)
    assert onnx_runtime.export_key(tmp_path) == first
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert onnx_runtime.export_key(tmp_path) != first


@needs_onnx
@pytest.mark.integration
def test_failed_export_leaves_nothing_behind(onnx_embedder, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_runtime, "_CHECK_ATOL", -1.0)  # the parity check after export fails
    with pytest.raises(ConfigError, match="does not reproduce torch.*backend: torch"):
        onnx_runtime.export_onnx(onnx_embedder.sentence_transformer, tmp_path / "key")
    assert list(tmp_path.iterdir()) == []  # no temporary directory, no half export


# -- backend: onnx-int8 ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_embedder(onnx_embedder, onnx_dir):
    """The int8 backend, quantized once from the module's fp32 export."""
    embedder = _onnx_int8(onnx_dir, batch_size=2)
    embedder.warm_up()
    return embedder


def _onnx_int8(onnx_dir, **kwargs) -> SentenceTransformersEmbedder:
    return SentenceTransformersEmbedder(
        model="all-MiniLM-L6-v2",
        device="cpu",
        backend="onnx-int8",
        onnx_dir=str(onnx_dir),
        **kwargs,
    )


@needs_onnx
@pytest.mark.integration
def test_int8_vectors_stay_close_to_torch(embedder, onnx_embedder, int8_embedder, onnx_dir):
    assert int8_embedder._onnx.quantized and not int8_embedder._onnx.exported  # fp32 reused
    int8_dir = onnx_embedder._onnx.target.with_name(
        onnx_embedder._onnx.target.name + onnx_runtime.INT8_SUFFIX
    )
    assert onnx_runtime.manifest_ok(int8_dir)
    fp32_size = (onnx_embedder._onnx.target / onnx_runtime.MODEL_FILE).stat().st_size
    # the quantized encoder weights (most of them: not the 6 down-projections, nor the fp32
    # token-embedding table, half the file) shrink to a quarter
    assert (int8_dir / onnx_runtime.MODEL_FILE).stat().st_size < 0.8 * fp32_size
    skipped = onnx_runtime.down_projections(onnx_embedder._onnx.target / onnx_runtime.MODEL_FILE)
    assert len(skipped) == 6 and all(
        "/output/dense/" in n and "attention" not in n for n in skipped
    )
    vectors = int8_embedder.embed_documents(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * embedder.embed_documents(TEXTS), axis=1)
    # int8 is not exact: close to torch, and not identical (it really is another model)
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.985 and cosines.min() < 0.9999, cosines


@needs_onnx
@pytest.mark.integration
def test_int8_model_is_reused(int8_embedder, onnx_dir, monkeypatch):
    calls: list[object] = []
    real = onnx_runtime.quantize_onnx

    def counting(st_model, fp32_model, target):
        calls.append(target)
        return real(st_model, fp32_model, target)

    monkeypatch.setattr(onnx_runtime, "quantize_onnx", counting)
    again = _onnx_int8(onnx_dir)
    again.warm_up()
    assert calls == [] and not again._onnx.quantized
    assert float(again.embed_query("cat") @ int8_embedder.embed_query("cat")) > 0.99999


@needs_onnx
@pytest.mark.integration
def test_int8_that_drifts_is_refused_and_leaves_nothing(onnx_embedder, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_runtime, "_INT8_MIN_COSINE", 1.01)  # no int8 model can pass
    fp32_model = onnx_embedder._onnx.target / onnx_runtime.MODEL_FILE
    with pytest.raises(ConfigError, match=r"drifts too far from torch.*backend: onnx or torch"):
        onnx_runtime.quantize_onnx(onnx_embedder.sentence_transformer, fp32_model, tmp_path / "q")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="'torch', 'onnx', 'onnx-int8'"):
        SentenceTransformersEmbedder(model="all-MiniLM-L6-v2", backend="int4")
