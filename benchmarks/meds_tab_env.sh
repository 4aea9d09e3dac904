#!/usr/bin/env bash
# Create benchmarks/.venv-medstab: a side environment holding MEDS-Tab 0.2.0 (`meds-tab`), the
# reference tabulariser that benchmarks/bench_features.py compares against. ehrbench never
# imports it; the benchmark runs its `meds-tab-*` commands in subprocesses. MEDS-Tab needs
# polars 1.x and its own hydra stack, so it cannot share .venv.
#
# Usage: bash benchmarks/meds_tab_env.sh   (idempotent; re-running only checks the install)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-medstab"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    echo '*' > "$venv/.gitignore"  # keep the environment out of git
fi
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("meds-tab") == "0.2.0"' \
    2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "meds-tab==0.2.0"
fi
"$venv/bin/meds-tab-tabularize-time-series" --help >/dev/null
echo "MEDS-Tab ready: $venv/bin/meds-tab-tabularize-time-series"
