#!/usr/bin/env bash
# Installing the kit the Colab way must leave Colab's preinstalled packages alone: build a venv
# with the versions Colab ships (tests/colab_versions.txt), run colab_setup.sh in its Colab mode
# (AKIRA_COLAB=1 does what the google.colab detection does), then check that every pinned
# version is unchanged and that the kit imports (transformer_lens included).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pins=tests/colab_versions.txt
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
venv="$scratch/colab-venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$pins"
(
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    AKIRA_COLAB=1 bash colab_setup.sh
)
"$venv/bin/python" - "$pins" <<'PY'
import importlib.metadata as md
import sys

from packaging.version import Version

changed, pins = [], 0
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    pins += 1
    have = md.version(name)
    if Version(have).public != Version(want).public:
        changed.append(f"{name} {want} -> {have}")
if changed:
    sys.exit("colab_setup.sh changed Colab's preinstalled packages: " + ", ".join(changed))
import akira_nb.modular_arithmetic.models  # noqa: F401,E402  (pulls in transformer_lens)
import akira_nb.spatiotemporal.model  # noqa: F401,E402

print(f"[colab check] all {pins} of Colab's pinned versions unchanged; akira_nb imports")
PY
