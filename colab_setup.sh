#!/usr/bin/env bash
# Install akira_nb and its requirements. Idempotent; says what it did.
#
# - On Colab (or with AKIRA_COLAB=1, which tests/colab_install_check.sh uses): installs
#   requirements.txt into the kernel's Python, keeping Colab's preinstalled torch, numpy,
#   ipywidgets, matplotlib, IPython and transformers (pinned to the installed versions while pip
#   resolves).
# - Elsewhere: uses the active virtual environment, or creates ./.venv; installs torch first
#   when missing (pip install torch==2.13.0: a CPU build on the kit's CI machines; set
#   AKIRA_TORCH to choose another spec, e.g. "torch" for your platform's default build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

say() { echo "[akira-nb setup] $*"; }

if [ "${AKIRA_COLAB:-0}" = 1 ] || { [ -d /content ] && python3 -c "import google.colab" 2>/dev/null; }; then
    py=python3
    colab=1
    say "Colab mode: keeping the preinstalled torch, numpy, ipywidgets, matplotlib, IPython, transformers"
else
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        py="$VIRTUAL_ENV/bin/python"
        say "using the active virtual environment $VIRTUAL_ENV"
    else
        if [ ! -x .venv/bin/python ]; then
            say "creating ./.venv"
            python3 -m venv .venv
        else
            say "reusing ./.venv"
        fi
        py="$here/.venv/bin/python"
    fi
    if "$py" -c "import torch" 2>/dev/null; then
        say "torch $("$py" -c 'import torch; print(torch.__version__)') already installed"
    else
        say "installing ${AKIRA_TORCH:-torch==2.13.0}"
        "$py" -m pip install -q --upgrade pip
        "$py" -m pip install -q "${AKIRA_TORCH:-torch==2.13.0}"
    fi
fi

# Pin what is already installed of these so nothing replaces them (Colab's runtime needs them).
pins="$(mktemp)"
trap 'rm -f "$pins"' EXIT
"$py" - > "$pins" <<'PY'
import importlib.metadata as md
KEEP = ("torch", "numpy", "ipywidgets", "widgetsnbextension", "matplotlib", "ipython",
        "ipykernel", "transformers")
for name in KEEP:
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
PY
say "keeping: $(tr '\n' ' ' < "$pins")"

if [ "${colab:-0}" = 1 ]; then
    "$py" -m pip install -q -c "$pins" -r requirements.txt
else
    "$py" -m pip install -q -c "$pins" -r requirements-dev.txt  # + test and notebook tools
fi
"$py" -m pip install -q -c "$pins" --no-deps -e .
say "akira_nb $("$py" -c 'import akira_nb; print(akira_nb.__version__)') ready in $("$py" -c 'import sys; print(sys.prefix)')"
