#!/usr/bin/env bash
# The kit's full test run: every notebook executed at the tiny size, the unit tests, then the
# explorers in a real browser. Each stage prints its wall time and CPU-seconds.
# Uses the python on PATH (activate the kit's environment first, or let colab_setup.sh make one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${PYTHON:-python3}"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then py=.venv/bin/python; fi

# The tests never need the network (model weights and hub data sets cannot be fetched on the
# kit's machines; the tests use models and text the kit builds): fail fast instead of retrying.
# One torch thread per process: two workers share the two cores.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1
# Bytecode caches on, even where the environment turns them off: every test process (workers,
# notebook kernels, the CLI and torchrun processes the tests start) otherwise compiles the kit
# and pytest rewrites every test module again.
unset PYTHONDONTWRITEBYTECODE

# stage NAME COMMAND...: run it, then print its wall time and its CPU-seconds (children's);
# returns the command's status.
stage() {
    local name="$1" me=$BASHPID start cpu0 cpu1 rc=0  # this shell (a subshell when run with &)
    shift
    echo "[tests] ${name} ..."
    start=$(date +%s)
    cpu0=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$me/stat")
    "$@" || rc=$?
    cpu1=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$me/stat")
    echo "[tests] ${name}: $(( $(date +%s) - start )) s wall," \
        "$(( (cpu1 - cpu0) / $(getconf CLK_TCK) )) CPU-s"
    return "$rc"
}

# Notebooks, end to end at the tiny size, two at a time (one per worker at a time, so that 013
# and 026, the longest, run side by side), into a scratch runs folder that the
# unit tests (AKIRA_TINY_RUNS_DIR: the tiny studies checked there are these runs, reopened)
# and the browser test (AKIRA_RESUME=1) reopen instead of training again.
nbruns="$(mktemp -d)/runs"
trap 'rm -rf "${nbruns%/runs}"' EXIT  # the scratch runs (checkpoints included) go at the end
# -p nbclient_wakeup: the notebook client polls the kernel in 1-second slices (an explorer cell's
# reply can otherwise wait unseen until the cell's timeout: jupyter/nbclient#312).
stage "notebooks at tiny" env AKIRA_RUNS_DIR="$nbruns" AKIRA_SIZE=tiny PYTHONPATH="$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" \
    "$py" -m pytest -q -p no:cacheprovider -p nbclient_wakeup --nbmake --nbmake-timeout=900 \
    -n 2 --dist load --maxschedchunk 1 notebooks/

# Unit tests, two workers (pytest-xdist; a line as each file finishes), each file on one worker
# so that a module's shared fixture (a small trained run) is made once: Agg backend here only
# (a kernel that inherits it would lose its figures).
# -p no:nbmake: the notebook plugin's imports (nbformat's JSON-schema checkers) cost each
# pytest process about 2 CPU-s, and only the notebook stage needs it.
stage "unit tests" env AKIRA_TINY_RUNS_DIR="$nbruns" MPLBACKEND=Agg "$py" -m pytest tests -q \
    -p no:cacheprovider -p no:nbmake -n 2 --dist loadfile --ignore=tests/browser -m "not full_shapes" \
    --durations=10

# The t4 plans at their real widths (GPT-2 sizes, 50,257-token vocabularies) on local stand-ins,
# a few steps each: memory-heavy, so apart from the unit tests. One test at a time per worker,
# so that the two longest (000's, then 026's) run side by side. The explorers in a real browser
# (JupyterLab + headless Chromium open every notebook at the tiny size on the notebook stage's
# runs and change each explorer's controls; skipped without Chromium, except in CI) keep about
# one core busy, so they run beside the t4 plans; the t4 stage's output follows the browser's.
# No MPLBACKEND for the browser: the kernels keep their inline backend.
t4log="${nbruns%/runs}/t4.log"
stage "t4 plans on stand-ins" env MPLBACKEND=Agg "$py" -m pytest tests -q -p no:cacheprovider \
    -p no:nbmake -n 2 --dist load --maxschedchunk 1 -m full_shapes --durations=5 >"$t4log" 2>&1 &
t4=$!
rc=0
stage "explorers in a browser" env AKIRA_BROWSER_RUNS_DIR="$nbruns" "$py" -m pytest -q \
    -p no:cacheprovider -p no:nbmake tests/browser || rc=$?
wait "$t4" || rc=$?
cat "$t4log"
exit "$rc"
