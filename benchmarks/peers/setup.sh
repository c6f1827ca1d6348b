#!/usr/bin/env bash
# Builds benchmarks/peers/.venv: servcore's own pinned runtime (the repo's
# requirements.lock, with hashes), the peers and everything they need pinned
# in requirements.txt, then servcore itself, editable from the repo root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
venv="$here/.venv"

rm -rf "$venv"
"$python" -m venv "$venv"
install=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${install[@]}" --require-hashes --no-deps -r "$root/requirements.lock"
"${install[@]}" --no-deps -r "$here/requirements.txt"
"${install[@]}" --no-deps --no-build-isolation -e "$root"
"$venv/bin/python" -m pip check
touch "$venv/.installed"
echo "ready: $venv"
