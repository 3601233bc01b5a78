"""ONNX Runtime backend for sentence-transformers models.

The transformer inside a loaded ``SentenceTransformer`` is exported to ONNX on this machine
(``torch.onnx.export``, nothing is downloaded) into a cache directory keyed by the model files,
then run with an ``onnxruntime.InferenceSession``. Tokenization and the modules after the
transformer (pooling, normalization, dense layers) stay the model's own, so vectors match the
torch backend.

An export is written to a temporary directory next to its final place and renamed into place
with a manifest of file sizes, so a killed export never leaves a half-written model that later
runs would load; a cached export whose files do not match its manifest, or that ONNX Runtime
cannot load, is exported again.

``backend: onnx-int8`` quantizes that export once more, into a sibling directory with its own
manifest: dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``) of the
weight matrices (MatMul with a constant operand), int8 weights per output channel, activations
quantized per batch at run time. The feed-forward down-projections (weights taller than wide,
fed by GELU outputs whose outliers per-tensor activation scales cannot hold) stay fp32, as do
attention score products, softmax, LayerNorm and pooling: quantizing those projections too is
faster but cost 0.0054 nDCG@10 on cranfield. ``benchmarks/onnx_embed.py`` measures speed and
retrieval quality against torch.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rag.connectors._deps import require
from rag.core.errors import ConfigError, MissingDependencyError

logger = logging.getLogger("rag.embedders.onnx")

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "export.json"
_FORMAT = 1  # bump when the export itself changes, so older cached exports are not reused
_OPSET = 17
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUT_NAME = "last_hidden_state"
_STALE_TEMP_S = 24 * 3600  # temporary export directories older than this are leftovers
_CHECK_ATOL = 1e-3  # largest token-embedding difference accepted between ONNX and torch
_CHECK_TEXTS = ["short", "a check sentence of another length, not the traced one", "x y z"]
_PURPOSE = "embedder.sentence_transformers with backend: onnx"
_INT8_FORMAT = 2  # bump when the quantization settings change: a new cache directory
INT8_SUFFIX = f"-int8v{_INT8_FORMAT}"
_INT8_MIN_COSINE = 0.97  # a guard against a broken quantization, not the quality bar


def require_onnxruntime() -> Any:
    """Import ``onnxruntime`` or raise MissingDependencyError naming ``ragline[onnx]``."""
    return require("onnxruntime", package="onnxruntime", extra="onnx", purpose=_PURPOSE)


def default_onnx_dir() -> Path:
    """``~/.cache/ragline/onnx``: where exports go unless ``onnx_dir`` says otherwise."""
    return Path.home() / ".cache" / "ragline" / "onnx"


def export_key(model_path: str | Path) -> str:
    """Hash of the model directory, its files' sizes and mtimes, and the exporter versions."""
    import torch
    import transformers

    root = Path(model_path).resolve()
    digest = hashlib.sha256(
        f"{root}|torch {torch.__version__}|transformers {transformers.__version__}|"
        f"format {_FORMAT}|opset {_OPSET}".encode()
    )
    if root.is_dir():
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"|{file.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _transformer(st_model: Any) -> Any:
    """The Hugging Face model inside the first module, or ConfigError when there is none."""
    first = st_model[0]
    model = getattr(first, "auto_model", None)  # sentence-transformers module; varies by kind
    text = (getattr(first, "modality_config", None) or {}).get("text")  # s-t 5.x only
    if model is None or (
        text is not None
        and (text.get("method") != "forward" or text.get("method_output_name") != _OUTPUT_NAME)
    ):
        raise ConfigError(
            f"backend 'onnx' supports models whose first module is a text transformer "
            f"returning {_OUTPUT_NAME}; this model starts with {type(first).__name__}. "
            "Use backend: torch.",
            field="backend",
        )
    return model


def _tokenize(st_model: Any, texts: list[str]) -> dict[str, Any]:
    preprocess = getattr(st_model, "preprocess", None) or st_model.tokenize  # s-t 5.x renamed it
    return preprocess(texts)


def manifest_ok(directory: Path) -> bool:
    """True when ``directory`` holds a finished export: a manifest and files of those sizes."""
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        files: dict[str, int] = manifest["files"]
        return (
            manifest.get("format") == _FORMAT
            and MODEL_FILE in files
            and all((directory / name).stat().st_size == size for name, size in files.items())
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _export_into(st_model: Any, directory: Path) -> list[str]:
    """Write ``directory/model.onnx`` (and any external-data files); returns the input names."""
    import torch

    require("onnx", package="onnx", extra="onnx", purpose=_PURPOSE)  # the exporter needs it
    model = _transformer(st_model)
    params = inspect.signature(model.forward).parameters
    # Two texts of different lengths: the trace sees padding, so the mask path is kept.
    features = _tokenize(st_model, ["ragline", "a longer sentence traced with padding to export"])
    names = [n for n in _INPUT_NAMES if n in features and n in params]
    device = next(model.parameters()).device
    args = tuple(features[n].to(device) for n in names)

    class _Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            kwargs = dict(zip(names, inputs))
            return self.model(**kwargs, return_dict=True).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, _OUTPUT_NAME]}
    options: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter: no onnxscript needed
    attention = getattr(model.config, "_attn_implementation", None)  # transformers-private
    # Plain ("eager") attention exports to a graph ONNX Runtime runs faster than the SDPA one.
    switch = attention not in (None, "eager") and hasattr(model, "set_attn_implementation")  # 4.48+
    was_training = model.training
    try:
        if switch:
            try:
                model.set_attn_implementation("eager")
            except (ValueError, ImportError, NotImplementedError):
                switch = False
        model.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notices, not actionable
            torch.onnx.export(
                _Wrapper(),
                args,
                str(directory / MODEL_FILE),
                input_names=names,
                output_names=[_OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=_OPSET,
                do_constant_folding=True,
                **options,
            )
    finally:
        if switch:
            model.set_attn_implementation(attention)
        model.train(was_training)
    return names


def _check_export(st_model: Any, model_file: Path, names: list[str]) -> None:
    """Raise ConfigError unless the export reproduces torch on texts other than the traced."""
    import torch

    ort = require_onnxruntime()
    model = _transformer(st_model)
    features = _tokenize(st_model, _CHECK_TEXTS)
    device = next(model.parameters()).device
    with torch.no_grad():
        inputs = {n: features[n].to(device) for n in names}
        expected = model(**inputs, return_dict=True).last_hidden_state.float().cpu().numpy()
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    (actual,) = session.run([_OUTPUT_NAME], {n: features[n].cpu().numpy() for n in names})
    mask = features["attention_mask"].cpu().numpy().astype(bool)
    error = float(np.abs(actual - expected)[mask].max())
    if not error <= _CHECK_ATOL:
        raise ConfigError(
            f"the ONNX export of this model does not reproduce torch (max difference {error:.3g})"
            "; use backend: torch",
            field="backend",
        )


def export_onnx(st_model: Any, target: Path) -> Path:
    """Export ``st_model``'s transformer into ``target`` atomically; returns the model file.

    The export goes to a temporary sibling directory, gets a manifest of its file sizes and is
    renamed to ``target`` (an incomplete ``target`` is replaced; a complete one that another
    process finished meanwhile is kept).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    started = time.perf_counter()
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        try:
            names = _export_into(st_model, temp)
        except (ConfigError, MissingDependencyError):
            raise
        except Exception as err:  # the exporter's own errors: say what to do instead
            raise ConfigError(
                f"could not export the model to ONNX ({type(err).__name__}: {err}); "
                "use backend: torch",
                field="backend",
            ) from err
        _check_export(st_model, temp / MODEL_FILE, names)
        files = {p.name: p.stat().st_size for p in temp.iterdir() if p.is_file()}
        manifest = {"format": _FORMAT, "files": files, "inputs": names, "opset": _OPSET}
        (temp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        if target.exists() and not manifest_ok(target):
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(temp, target)
        except OSError:
            if not manifest_ok(target):  # not a finished export from a concurrent process
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    logger.info("exported to ONNX in %.1f s: %s", time.perf_counter() - started, target)
    return target / MODEL_FILE


def down_projections(model_file: Path) -> list[str]:
    """Names of the MatMul nodes whose constant weight has more rows than columns: in a
    transformer, the feed-forward output projections (intermediate size -> hidden size)."""
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        shape = shapes.get(node.input[1])
        if shape is not None and len(shape) == 2 and shape[0] > shape[1]:
            names.append(node.name)
    return names


def quantize_onnx(st_model: Any, fp32_model: Path, target: Path) -> Path:
    """Quantize ``fp32_model`` to int8 into ``target`` atomically; returns the model file.

    Weights of the MatMuls with a constant operand (but the down-projections, see
    :func:`down_projections`) become int8 per output channel (symmetric,
    full 8-bit range: the CPUs ONNX Runtime targets multiply u8 x s8 exactly with VNNI, and
    without it MLAS widens to 16 bits rather than saturating); activations are quantized per
    batch at run time. The result must give sentence vectors within cosine
    ``_INT8_MIN_COSINE`` of torch on a few texts, or ConfigError says to use another backend.
    """
    require("onnx", package="onnx", extra="onnx", purpose=_PURPOSE)
    ort = require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    started = time.perf_counter()
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        hint = _DropQuantizerHint()  # logged on the root logger; not actionable here
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(
                fp32_model,
                temp / MODEL_FILE,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=down_projections(fp32_model),
                per_channel=True,
                reduce_range=False,
                weight_type=QuantType.QInt8,
                extra_options={"MatMulConstBOnly": True},
            )
        except Exception as err:  # the quantizer's own errors: say what to do instead
            raise ConfigError(
                f"could not quantize the ONNX export to int8 ({type(err).__name__}: {err}); "
                "use backend: onnx or torch",
                field="backend",
            ) from err
        finally:
            logging.getLogger().removeFilter(hint)
        session = ort.InferenceSession(str(temp / MODEL_FILE), providers=["CPUExecutionProvider"])
        cosine = _min_cosine_to_torch(st_model, session)
        if not cosine >= _INT8_MIN_COSINE:
            raise ConfigError(
                f"the int8 model drifts too far from torch (cosine {cosine:.4f} < "
                f"{_INT8_MIN_COSINE}); use backend: onnx or torch",
                field="backend",
            )
        files = {p.name: p.stat().st_size for p in temp.iterdir() if p.is_file()}
        manifest = {
            "format": _FORMAT,
            "int8_format": _INT8_FORMAT,
            "files": files,
            "quantization": "dynamic, MatMul weights int8 per channel, down-projections fp32",
            "check_cosine": round(cosine, 6),
        }
        (temp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        if target.exists() and not manifest_ok(target):
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(temp, target)
        except OSError:
            if not manifest_ok(target):
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    logger.info("quantized to int8 in %.1f s: %s", time.perf_counter() - started, target)
    return target / MODEL_FILE


class _DropQuantizerHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _min_cosine_to_torch(st_model: Any, session: Any) -> float:
    """Smallest cosine between ``session``'s sentence vectors and torch's, on the check texts."""
    import torch

    features = _tokenize(st_model, _CHECK_TEXTS)
    names = [i.name for i in session.get_inputs()]
    with torch.no_grad():
        expected = st_model.encode(_CHECK_TEXTS, convert_to_tensor=True, normalize_embeddings=True)
        feeds = {n: features[n].cpu().numpy().astype(np.int64) for n in names}
        (hidden,) = session.run([_OUTPUT_NAME], feeds)
        features["token_embeddings"] = torch.from_numpy(hidden)
        for module in list(st_model.children())[1:]:
            features = module(features)
        actual = torch.nn.functional.normalize(features["sentence_embedding"], dim=1)
    return float((actual * expected.cpu()).sum(dim=1).min())


def _remove_stale_temps(target: Path) -> None:
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_TEMP_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


class OnnxSentenceEncoder:
    """Runs a ``SentenceTransformer`` with its transformer in ONNX Runtime.

    Args:
        st_model: The loaded model (on CPU); its tokenizer and later modules are used as is.
        model_path: Directory the model was loaded from (keys the export cache).
        device: ``cpu`` or ``cuda[:N]``; CUDA needs ONNX Runtime's CUDAExecutionProvider
            (``onnxruntime-gpu``), else the CPU provider runs with a warning.
        onnx_dir: Root of the export cache; ``None`` means ``~/.cache/ragline/onnx``.
        threads: Intra-op threads of the session; ``None`` or 0 means torch's thread count.
        quantize: Run the int8 quantization of the export (``backend: onnx-int8``), made once
            from the fp32 export and cached beside it.
    """

    def __init__(
        self,
        st_model: Any,
        model_path: str | Path,
        *,
        device: str = "cpu",
        onnx_dir: str | Path | None = None,
        threads: int | None = None,
        quantize: bool = False,
    ) -> None:
        import torch

        ort = require_onnxruntime()
        _transformer(st_model)  # unsupported architectures fail before any export
        self.st_model = st_model
        self.target = Path(onnx_dir or default_onnx_dir()).expanduser() / export_key(model_path)
        self.exported = False
        self.quantized = False
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.providers = self._providers(ort, device)
        if manifest_ok(self.target):
            try:
                self.session = ort.InferenceSession(
                    str(self.target / MODEL_FILE), options, providers=self.providers
                )
            except Exception as err:  # ORT raises its own exception types
                logger.warning(
                    "cached ONNX export %s does not load (%s); re-exporting", self.target, err
                )
                self.session = self._export_and_load(ort, options)
        else:
            self.session = self._export_and_load(ort, options)
        if quantize:
            self.session = self._load_int8(ort, options)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.modules = list(st_model.children())[1:]

    def _export_and_load(self, ort: Any, options: Any) -> Any:
        path = export_onnx(self.st_model, self.target)
        self.exported = True
        return ort.InferenceSession(str(path), options, providers=self.providers)

    def _load_int8(self, ort: Any, options: Any) -> Any:
        """The int8 session, quantizing the fp32 export first unless a finished one is cached."""
        int8 = self.target.with_name(self.target.name + INT8_SUFFIX)
        if manifest_ok(int8):
            try:
                return ort.InferenceSession(
                    str(int8 / MODEL_FILE), options, providers=self.providers
                )
            except Exception as err:  # ORT raises its own exception types
                logger.warning("cached int8 model %s does not load (%s); re-quantizing", int8, err)
        path = quantize_onnx(self.st_model, self.target / MODEL_FILE, int8)
        self.quantized = True
        return ort.InferenceSession(str(path), options, providers=self.providers)

    @staticmethod
    def _providers(ort: Any, device: str) -> list[Any]:
        if not device.startswith("cuda"):
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            logger.warning(
                "device %s asked for, but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu); running the ONNX model on the CPU",
                device,
            )
            return ["CPUExecutionProvider"]
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        """Features for ``texts`` from the model's own tokenizer (same truncation)."""
        return _tokenize(self.st_model, texts)

    def __call__(self, features: dict[str, Any]) -> Any:
        """Sentence embeddings (a torch tensor, one row per text) for tokenized ``features``."""
        import torch

        feeds = {
            name: np.ascontiguousarray(features[name].cpu().numpy(), dtype=np.int64)
            for name in self.input_names
        }
        (hidden,) = self.session.run([_OUTPUT_NAME], feeds)
        features["token_embeddings"] = torch.from_numpy(hidden)
        for module in self.modules:
            features = module(features)
        return features["sentence_embedding"]
