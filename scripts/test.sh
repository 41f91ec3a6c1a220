#!/usr/bin/env bash
# The whole test suite: lint, format check, the docs build, then every test (slow and
# integration included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow" -x`.
set -uo pipefail
cd "$(dirname "$0")/.."
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 GLOO_SOCKET_IFNAME=lo
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
# The manual: --strict turns a broken link or anchor, or a page missing from the nav, into a
# failure. (Not --quiet: it hides the warnings that --strict counts, and the build then passes.)
site=$(mktemp -d)
docs_log=$(NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site/site" 2>&1)
docs_rc=$?
rm -rf "$site"
if [ "$docs_rc" -ne 0 ]; then
  echo "$docs_log" >&2
  echo "test: mkdocs build --strict failed" >&2
  exit 1
fi
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure, not a pass" >&2
fi
exit "$rc"
