#!/usr/bin/env bash
# Create .venv and install ragline with the given extras (default: quickstart).
#   scripts/bootstrap.sh quickstart      # what the quick start needs
#   scripts/bootstrap.sh dev             # everything the tests need
# llama-cpp-python ships only as source. Its default build uses the build machine's native CPU
# flags, which crash at the first decode on some machines, so on x86-64 we build it once with
# portable flags and keep that wheel in ~/.cache/ragline/wheels (pip's own cache would keep a
# wheel built with whatever flags built it).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-quickstart}"
PYTHON="${PYTHON:-python3}"
LLAMA_VERSION="0.3.36"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel

# torch first: 2.13.0 is the CPU build this project is tested with (a range that admits newer
# releases could pull a multi-GB CUDA build).
"${PIP[@]}" install -q "torch==2.13.0"

if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  WHEELS="${RAGLINE_WHEEL_CACHE:-$HOME/.cache/ragline/wheels}"
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION (about 4 minutes, once)..." >&2
    if [ "$(uname -m)" = "x86_64" ]; then
      export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    fi
    "${PIP[@]}" wheel -q --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "${PIP[@]}" install -q "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
fi

# Always (re)install the project, even when it is installed: the component type names are
# entry points (pyproject.toml), which an editable install only picks up when installed again.
"${PIP[@]}" install -q -e ".[$EXTRAS]"

# The store.pgvector tests need PostgreSQL with pgvector, the playground's browser test Debian's
# chromium: install them when missing (root + apt; elsewhere they say so and those tests skip).
if [ "$EXTRAS" = "dev" ]; then
  scripts/install_postgres.sh
  scripts/install_chromium.sh
fi
