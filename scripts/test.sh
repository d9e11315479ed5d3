#!/usr/bin/env bash
# Installs everything the tests use (Python packages; Debian's Chromium for the browser tests, when
# run as root), lints the tree and runs the whole suite. README's second command and CI's .ci/run call this.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-test.txt
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: browser tests need Debian's Chromium (sudo apt-get install chromium); they will be skipped" >&2
  fi
fi
python -m ruff check .  # lint first: a finding fails the run before the slow tests start
exec python -m pytest "$@"
