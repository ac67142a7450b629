#!/usr/bin/env bash
# The real-server suite: build FerretDB once (scripts/ferretdb.sh), start it on a free loopback
# port with a temporary SQLite directory, run the tests marked `mongo` against it with
# COORDD_TEST_MONGODB_URI, stop it. Extra arguments go to pytest.
#
#   scripts/test-mongo.sh [pytest args]        (make test-mongo)
#
# COORDD_TEST_MONGODB_URI already set: that server is used instead (e.g. a MongoDB replica set)
# and nothing is built or started.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"

run_suite() {
    # -m mongo: the real-server tests only; a skipped one fails the run (the suite must cover
    # the server, not pass by skipping); no test collected (exit 5) fails too.
    "$PYTHON" -m pytest -q -p no:cacheprovider -m mongo -rs "$@" tests | tee "$LOG"
    local rc=${PIPESTATUS[0]}
    if [[ $rc -ne 0 ]]; then return "$rc"; fi
    if grep -Eq '[0-9]+ skipped' "$LOG"; then
        echo "test-mongo: real-server tests were skipped (see above): that is a failure" >&2
        return 1
    fi
}

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
if [[ -n "${COORDD_TEST_MONGODB_URI:-}" ]]; then
    echo "test-mongo: against $COORDD_TEST_MONGODB_URI"
    run_suite "$@"
    exit $?
fi

FERRETDB="$(scripts/ferretdb.sh)"
WORK="$(mktemp -d)"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/data" "$WORK/state"
"$FERRETDB" --handler=sqlite --sqlite-url="file:$WORK/data/" --listen-addr="127.0.0.1:$PORT" \
    --telemetry=disable --debug-addr=- --state-dir="$WORK/state" --log-level=warn \
    >"$WORK/ferretdb.log" 2>&1 &
FPID=$!
# The outage test kills the server and starts it again with the same command line (port, data
# and state directories); it writes the new process's pid here, which cleanup stops.
echo "$FPID" > "$WORK/ferretdb.pid"
cleanup() {
    local pid
    pid="$(cat "$WORK/ferretdb.pid" 2>/dev/null || echo "$FPID")"
    kill "$pid" 2>/dev/null || true
    kill "$FPID" 2>/dev/null || true
    wait "$FPID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -rf "$WORK" "$LOG"
}
trap cleanup EXIT
for _ in $(seq 100); do
    if "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$FPID" 2>/dev/null; then
        echo "test-mongo: FerretDB did not start:" >&2
        cat "$WORK/ferretdb.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "test-mongo: FerretDB $("$FERRETDB" --version 2>/dev/null | head -1) on 127.0.0.1:$PORT (SQLite in $WORK/data)"
export COORDD_TEST_MONGODB_URI="mongodb://127.0.0.1:$PORT/"
export COORDD_TEST_MONGODB_SERVER="ferretdb"
export COORDD_TEST_FERRETDB_PID="$FPID"  # the first process; after a restart see the pid file
export COORDD_TEST_FERRETDB_PIDFILE="$WORK/ferretdb.pid"
run_suite "$@"
