#!/usr/bin/env bash
# Prints cargo's target directory for this workspace (CARGO_TARGET_DIR, a config file's
# build.target-dir, or ./target), so scripts find the binaries wherever cargo puts them.
set -euo pipefail
cd "$(dirname "$0")/../.."
${CARGO:-cargo} metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
