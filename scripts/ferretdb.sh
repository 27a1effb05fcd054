#!/usr/bin/env bash
# Builds FerretDB (a MongoDB wire-protocol server, Apache-2.0) from the Go module proxy, for the MongoDB
# test run where no mongod can be installed. Cached: later runs find the binary and do nothing.
# Prints the binary's path on its last line; `--locate` only prints it (exit 1 when it is not built).
# Its module leaves out build/version/version.txt (a generated file that the binary reads at start),
# so the module is copied to a writable folder and the file written before `go build`.
set -euo pipefail

version="${FERRETDB_VERSION:-v1.24.2}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/parse-temporal-batch-memory/ferretdb-$version"
binary="$cache/ferretdb"
if [ "${1:-}" = --locate ]; then
  echo "$binary"
  [ -x "$binary" ]
  exit
fi
if [ -x "$binary" ] && "$binary" --version >/dev/null 2>&1; then
  echo "$binary"
  exit 0
fi
command -v go >/dev/null || { echo "ferretdb: Go is needed to build FerretDB $version (or set MONGOMS_SYSTEM_BINARY to a mongod)" >&2; exit 1; }

module="$(go mod download -json "github.com/FerretDB/FerretDB@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
source="$(mktemp -d)"
trap 'chmod -R u+w "$source"; rm -rf "$source"' EXIT
cp -R "$module/." "$source/"
chmod -R u+w "$source"
echo "$version" > "$source/build/version/version.txt"
mkdir -p "$cache"
(cd "$source" && GOFLAGS=-mod=mod go build -trimpath -o "$binary.partial" ./cmd/ferretdb)
mv "$binary.partial" "$binary"
"$binary" --version >/dev/null
echo "$binary"
