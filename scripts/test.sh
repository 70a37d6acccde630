#!/usr/bin/env bash
# The whole test suite: the command the README gives and .ci/run calls.
# Needs Go and, for the interop suite, Node.js and npm (CI=true makes a
# missing Node a failure instead of a skip).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './*/node_modules/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== go vet (linux, darwin, windows)"
go vet ./...
GOOS=darwin go vet ./...
GOOS=windows go vet ./...
GOOS=windows go build -o /dev/null .

echo "== go test -race (unit, router, end to end, interop)"
go test -race -count=1 -timeout 15m ./...

echo "== short fuzz runs (seed corpora replay in the run above)"
go test -run XXX -fuzz '^FuzzScanAgreesWithStdlib$' -fuzztime 10s ./frame
go test -run XXX -fuzz '^FuzzLineReader$' -fuzztime 10s ./frame
go test -run XXX -fuzz '^FuzzRouter$' -fuzztime 15s ./bridge

echo "== benchmark smoke (no timing asserted; fails on a failed call or a wrong count)"
go run ./bench/compare -smoke -targets direct-http,direct-stdio,bridge-http,bridge-stdio
