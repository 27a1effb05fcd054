#!/bin/sh
# Starts the Temporal time-skipping test server the way @temporalio/testing starts its own build of it:
# `run.sh <port> [args]`. Its jars are in .cache/temporal-test-server/ (scripts/setup.sh puts them there).
lib="$(dirname "$0")/../../.cache/temporal-test-server"
exec java -XX:+UseSerialGC -cp "$lib/*" io.temporal.testserver.TestServer "$@"
