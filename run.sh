#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./run.sh example [--model M] [--out DIR]   mask generation on a sample image + tracking on a sample video
#   ./run.sh test [PYTEST ARGS]                the whole test suite (slow and parity tests included)
#   ./run.sh test-newest-transformers          the fast suite against the newest transformers release (CI runs it too)
# Both create (or reuse) a virtual environment with the tested versions from constraints.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="${SAM2P_VENV:-$HOME/.cache/sam2-pipelines/venv}"
STAMP="$( (cat pyproject.toml constraints.txt; "$PY" --version) | sha256sum | cut -c1-16)"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$STAMP" ]; then
    echo "[run.sh] creating the environment in $VENV (first run takes a few minutes)" >&2
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -c constraints.txt setuptools torch torchvision
    # Meta's sam2 (reference extra) builds from source: no CUDA extension, and against the torch above.
    SAM2_BUILD_CUDA=0 "$VENV/bin/pip" install -q --no-build-isolation -c constraints.txt -e ".[test,demo,reference,ray]"
    echo "$STAMP" > "$VENV/.stamp"
fi
# The environment may be shared by several checkouts: point the editable install at this one.
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null

cmd="${1:-}"
[ $# -gt 0 ] && shift

# test-newest-transformers: the fast suite again in a second environment whose transformers (and what it
# needs) is the newest release the package index offers, beyond constraints.txt: a release that changes the
# internals sam2_pipelines/models/internals.py uses fails here first.
if [ "$cmd" = test-newest-transformers ]; then
    NEWEST="${SAM2P_NEWEST_VENV:-$HOME/.cache/sam2-pipelines/venv-newest-transformers}"
    rm -rf "$NEWEST"
    "$PY" -m venv "$NEWEST"
    grep -v -E '^(transformers|tokenizers|huggingface-hub|hf-xet|safetensors)==' constraints.txt > "$NEWEST/constraints.txt"
    "$NEWEST/bin/pip" install -q -c "$NEWEST/constraints.txt" setuptools torch torchvision
    "$NEWEST/bin/pip" install -q --no-build-isolation -c "$NEWEST/constraints.txt" -e ".[test,demo,ray]"
    # Past pyproject's tested range on purpose (pip then warns that sam2-pipelines requires an older one).
    "$NEWEST/bin/pip" install -q --upgrade transformers
    echo "[run.sh] fast suite against transformers $("$NEWEST/bin/python" -c 'import transformers; print(transformers.__version__)')" >&2
    exec "$NEWEST/bin/python" -m pytest "$@"
fi
# The browser test of the demo drives Debian's chromium (headless, through Playwright).
if [ "$cmd" = test ] && ! command -v chromium >/dev/null 2>&1; then
    echo "[run.sh] installing Debian's chromium for the demo's browser test" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
case "$cmd" in
    example) exec "$VENV/bin/python" -m sam2_pipelines.example "$@" ;;
    test) exec "$VENV/bin/python" -m pytest -m "" --durations=30 "$@" ;;
    *) echo "usage: ./run.sh example [--model M] [--out DIR] | ./run.sh test [pytest args] | ./run.sh test-newest-transformers [pytest args]" >&2; exit 2 ;;
esac
