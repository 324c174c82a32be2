#!/usr/bin/env bash
# The kit's full test run: unit tests, then every notebook executed at the tiny size.
# Uses the python on PATH (activate the kit's environment first, or let colab_setup.sh make one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${PYTHON:-python3}"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then py=.venv/bin/python; fi

# The tests never need the network (model weights and hub data sets cannot be fetched on the
# kit's machines; the tests use models and text the kit builds): fail fast instead of retrying.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

# Unit tests, two workers (pytest-xdist): Agg backend here only (a kernel that inherits it would
# lose its figures).
MPLBACKEND=Agg "$py" -m pytest tests -q -p no:cacheprovider -n 2 --dist loadgroup --ignore=tests/browser

# Notebooks, end to end at the tiny size, two at a time with one thread each, into a scratch
# runs folder that the browser test then reopens (AKIRA_RESUME=1) instead of training again.
nbruns="$(mktemp -d)/runs"
AKIRA_RUNS_DIR="$nbruns" AKIRA_SIZE=tiny OMP_NUM_THREADS=1 "$py" -m pytest -q -p no:cacheprovider --nbmake \
    --nbmake-timeout=600 -n 2 notebooks/

# The explorers in a real browser: JupyterLab + headless Chromium run every notebook at the tiny
# size and change each explorer's controls (a few minutes; skipped without Chromium, except in
# CI). No MPLBACKEND here either: the notebook kernels keep their inline backend.
AKIRA_BROWSER_RUNS_DIR="$nbruns" "$py" -m pytest -q -p no:cacheprovider tests/browser
