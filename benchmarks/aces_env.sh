#!/usr/bin/env bash
# Create benchmarks/.venv-aces: a side environment holding ACES 0.7.3 (es-aces), the reference
# implementation of the cohort language. ehrbench never imports it; benchmarks/aces_run.py runs
# its `aces-cli` in a subprocess. ACES needs polars 1.x and no torch, so it cannot share .venv.
#
# Usage: bash benchmarks/aces_env.sh   (idempotent; re-running only checks the install)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-aces"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("es-aces") == "0.7.3"' \
    2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "es-aces==0.7.3"
fi
"$venv/bin/aces-cli" --help >/dev/null
echo "ACES ready: $venv/bin/aces-cli"
