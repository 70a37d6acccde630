#!/usr/bin/env bash
# Builds mcpbridge as it is meant to be installed: ./scripts/build.sh [OUTPUT]
# (default ./mcpbridge). bench/compare measures this build.
#
# - CGO_ENABLED=0: a static binary. With cgo the net package links the C
#   resolver, so every start pays for the dynamic loader (about 3 ms on the
#   benchmark machine); Go's own resolver reads the same /etc files.
# - urfave_cli_no_docs: leaves out urfave/cli's man page and markdown
#   generators, whose markdown package alone costs about 2 ms of start.
# - -trimpath: no build machine paths in the binary.
# Cold start (spawn to the first tools/list answer) is a figure of issue #6.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-mcpbridge}"
CGO_ENABLED=0 exec go build -tags urfave_cli_no_docs -trimpath -o "$out" .
