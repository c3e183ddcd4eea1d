#!/usr/bin/env bash
# Runs every benchmark at one stated scale and prints the table the README shows.
#
#   bench/run.sh                      # 1,000 tenants x 100 extensions (the README's scale)
#   TENANTS=100 bench/run.sh          # quicker
#
# Needs the project venv (.venv), PostgreSQL at 127.0.0.1:5432 (or SERVER_DSN), and for the
# xml_curl line `wrk` and `nginx` (Debian: apt-get install -y wrk nginx). Loopback only.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TENANTS=${TENANTS:-1000}
EXTENSIONS=${EXTENSIONS:-100}
SERVER_DSN=${SERVER_DSN:-postgresql://postgres@127.0.0.1:5432/postgres}
OUT=bench/results
mkdir -p "$OUT"
export PYTHONPATH=.

run() {  # name, command...
  local name=$1; shift
  echo "== $name: $*" >&2
  "$@" 2>&1 | grep -v '^ts=' | tee "$OUT/$name.txt" >&2
}

run validate "$PY" bench/bench_validate.py --tenants "$TENANTS" --extensions "$EXTENSIONS"
run store "$PY" bench/bench_store.py --tenants "$TENANTS" --extensions "$EXTENSIONS" --dsn "$SERVER_DSN"
run save_to_served "$PY" bench/bench_save_to_served.py --tenants "$TENANTS" --extensions "$EXTENSIONS" --server-dsn "$SERVER_DSN"
run callcenter "$PY" bench/bench_callcenter.py
run portal "$PY" bench/bench_portal.py --tenants "$TENANTS" --extensions "$EXTENSIONS" --dsn "$SERVER_DSN"
run recordings_listing "$PY" bench/bench_recordings.py listing
run recordings_stream "$PY" bench/bench_recordings.py stream  # skips itself without nginx/curl
run voicemail_listing "$PY" bench/bench_voicemail.py
if command -v wrk >/dev/null && command -v nginx >/dev/null; then
  run xmlcurl "$PY" bench/bench_xmlcurl.py run --tenants "$TENANTS" --extensions "$EXTENSIONS" --uvloop --json "$OUT/xmlcurl.json"
else
  echo "wrk/nginx not installed: skipping the xml_curl load test (apt-get install -y wrk nginx)" >&2
  rm -f "$OUT/xmlcurl.json"
fi
"$PY" bench/summarize.py "$OUT" "$TENANTS" "$EXTENSIONS"
