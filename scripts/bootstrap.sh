#!/usr/bin/env bash
# Create or update .venv with the project and its test extras, idempotently.
#
# The venv is rebuilt only when the dependencies changed (the sha256 of pyproject.toml's
# dependency lists plus constraints.txt is stored in .venv/.bootstrap-stamp; tool settings
# such as ruff's do not count); otherwise this takes a second. Everything is resolved in
# ONE pip command against constraints.txt (pinned versions), because a second, separate
# install can silently downgrade numpy/opencv under TensorFlow.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
stamp_file=$VENV/.bootstrap-stamp

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "bootstrap: error: Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

deps=$("$PY" -c 'import json, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(json.dumps([p["dependencies"], p.get("optional-dependencies", {})], sort_keys=True))')
want=$( (echo "$deps"; cat constraints.txt) | sha256sum | cut -c1-64)

if [ -x "$VENV/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ]; then
  exit 0
fi

echo "bootstrap: creating $VENV (one pip resolve, ~2 min, ~4 GB) ..." >&2
start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]"
echo "$want" > "$stamp_file"
echo "bootstrap: done in $(( $(date +%s) - start )) s; $(du -sh "$VENV" | cut -f1) in $VENV" >&2
