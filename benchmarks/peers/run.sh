#!/usr/bin/env bash
# The peer benchmark in one line: builds benchmarks/peers/.venv on first use
# (or when the pins change), then runs it. Arguments go to run.py
# (--quick, --only servcore,huey, --runs N, --jobs N; --help).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ ! -f "$here/.venv/.installed" || "$here/requirements.txt" -nt "$here/.venv/.installed" ]]; then
    "$here/setup.sh"
fi
export PYTHONPATH="$(dirname "$here")"
exec "$here/.venv/bin/python" -m peers.run "$@"
