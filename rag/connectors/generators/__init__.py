"""Generators: chat models behind the :class:`~rag.core.generation.Generator` protocol.

- ``generator.llama_cpp``: a local GGUF model through ``llama-cpp-python``;
- ``generator.openai``: any OpenAI-compatible chat-completions endpoint over ``httpx``.

Both take OpenAI-style messages and tools and return a
:class:`~rag.core.generation.GenerationResult`, so they are interchangeable in YAML.
"""
