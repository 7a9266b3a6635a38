#!/usr/bin/env bash
# Generates a Python client from a running gateway's /openapi.json with openapi-python-client
# (from PyPI, into a cached virtualenv) and drives the README's flow with it, unchanged
# (tests/client/readme_flow.py). The gateway runs embedded (SQLite, the built-in sandbox) in a
# temporary directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${HEYDOC_BIN:-$(bash "$root/deploy/dev/target-dir.sh")/debug/heydoc}
venv=${XDG_CACHE_HOME:-$HOME/.cache}/heydoc/client-venv
version="0.29.*"

if [ ! -x "$venv/bin/openapi-python-client" ]; then
  echo "generated client: installing openapi-python-client into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "openapi-python-client==$version"
fi

workdir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

HEYDOC_HTTP_ADDR="127.0.0.1:$port" HEYDOC_ADMIN_ADDR=127.0.0.1:0 HEYDOC_DATA_DIR="$workdir/data" RUST_LOG=warn \
  "$bin" all >"$workdir/gateway.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.5; done

curl -fsS "$base/openapi.json" -o "$workdir/openapi.json"
# The generator's own settings: CSV bodies are files to it, and no formatter runs afterwards.
cat >"$workdir/config.yaml" <<'YAML'
content_type_overrides:
  text/csv: application/octet-stream
  image/jpeg: application/octet-stream
  image/png: application/octet-stream
  application/pdf: application/octet-stream
  video/mp4: application/octet-stream
  audio/ogg: application/octet-stream
post_hooks: []
YAML
(cd "$workdir" && "$venv/bin/openapi-python-client" generate --path openapi.json --meta none \
  --config config.yaml --output-path heydoc_client >"$workdir/generate.log" 2>&1) || {
  cat "$workdir/generate.log" >&2
  exit 1
}
# Every operation must have come out: a warning means one was skipped.
if grep -q "WARNING" "$workdir/generate.log"; then
  echo "openapi-python-client skipped part of the document:" >&2
  cat "$workdir/generate.log" >&2
  exit 1
fi
status=0
PYTHONPATH="$workdir" "$venv/bin/python" "$root/tests/client/readme_flow.py" "$base" || status=$?
if [ "$status" != 0 ]; then
  echo "the generated client failed; the gateway's log follows" >&2
  tail -n 30 "$workdir/gateway.log" >&2
fi
exit "$status"
