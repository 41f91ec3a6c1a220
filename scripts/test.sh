#!/usr/bin/env bash
# The whole test suite: lint, format check, then every test (slow and integration included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow" -x`.
set -uo pipefail
cd "$(dirname "$0")/.."
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 GLOO_SOCKET_IFNAME=lo
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure, not a pass" >&2
fi
exit "$rc"
