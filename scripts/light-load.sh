#!/usr/bin/env bash
# The latency of a request that reaches an idle server: the load example's
# `light` mode against gopark's echo example, its tokio twin, a Go `net`
# echo server and the `raw-epoll` yardstick (benches/raw-epoll), one server
# at a time, in turns.
#
#   bash scripts/light-load.sh                  # 5 rounds of 2,000 echoes
#   ROUNDS=3 N=1000 bash scripts/light-load.sh  # a quicker run
#
# `load light` (examples/load/light.rs, no runtime) keeps CONNS blocking connections
# and, before each 64-byte echo, sleeps 0..GAP_US µs (a fixed pseudo-random
# sequence, so every server sees the same gaps): each request finds the
# server idle. Every server runs with WORKERS worker threads (gopark:
# GOPARK_WORKERS, tokio: --workers, Go: GOMAXPROCS, raw-epoll: its THREADS
# argument), unpinned. Round r starts with the r-th server and goes round,
# so no server always runs first. Prints each run, then the medians over
# rounds of p50, p99 and p99.9, and gopark's ratio to each other server
# (below 1.0: gopark answers sooner).
#
# Environment (defaults in brackets):
#   ROUNDS [5]  N [2000] echoes per run  CONNS [4]  GAP_US [3000]
#   WORKERS [2]  SERVERS [gopark tokio go raw-epoll]; `gopark-two-hops` is
#   gopark with GOPARK_NETPOLL_INLINE=0 (every task runs on a worker woken
#   for it), for an A/B of the inline poll
#
# A server that is missing (no `go`) is skipped with a note. Also counts
# each server's thread wake-ups per request: the voluntary context switches
# of all its threads (/proc/PID/task/*/status) over the run, divided by N.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
N=${N:-2000}
CONNS=${CONNS:-4}
GAP_US=${GAP_US:-3000}
WORKERS=${WORKERS:-2}
SERVERS=${SERVERS:-gopark tokio go raw-epoll}
WORK=target/light-load
mkdir -p "$WORK"

echo "light-load: building" >&2
cargo build --release --quiet --example echo --example tokio_echo --example load
PROBE="target/release/examples/load"

available=()
for s in $SERVERS; do
    case $s in
        gopark | gopark-two-hops | tokio) available+=("$s") ;;
        go)
            if command -v go >/dev/null; then
                go build -o "$WORK/echo-go" scripts/go/echo.go
                available+=(go)
            else
                echo "light-load: go is not installed (apt-get install golang-go); skipping Go" >&2
            fi
            ;;
        raw-epoll)
            CARGO_TARGET_DIR="$WORK/target" cargo build --release --quiet \
                --manifest-path benches/raw-epoll/Cargo.toml
            available+=(raw-epoll)
            ;;
        *) echo "light-load: unknown server $s" >&2; exit 2 ;;
    esac
done

PORT=7391
ADDR=127.0.0.1:$PORT
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

# Runs server $1 in place of the calling (background) shell, so that `$!`
# is the server's own pid and killing it stops the server.
start() {
    case $1 in
        gopark) GOPARK_WORKERS=$WORKERS exec target/release/examples/echo "$ADDR" ;;
        gopark-two-hops) GOPARK_NETPOLL_INLINE=0 GOPARK_WORKERS=$WORKERS exec target/release/examples/echo "$ADDR" ;;
        tokio) exec target/release/examples/tokio_echo "$ADDR" --workers "$WORKERS" ;;
        go) exec "$WORK/echo-go" -workers "$WORKERS" "$ADDR" ;;
        raw-epoll) exec "$WORK/target/release/raw-epoll" echo "$ADDR" "$WORKERS" ;;
    esac
}

# Fails if something already listens on $PORT: a server left from an
# earlier run would answer in place of the one under test.
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "light-load: something already listens on $ADDR; stop it first" >&2
        return 1
    fi
}

# Waits (at most 5 s) until something accepts on $PORT.
wait_listening() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "light-load: $1 did not start listening on $ADDR" >&2
    return 1
}

# Voluntary context switches of all of process $1's threads so far: each
# is a thread going to sleep, so over a run of idle-server requests, the
# thread wake-ups the requests cost.
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

RESULTS="$WORK/runs.txt"
: >"$RESULTS"
n=${#available[@]}
for r in $(seq 0 $((ROUNDS - 1))); do
    for i in $(seq 0 $((n - 1))); do
        s=${available[$(((r + i) % n))]}
        port_free
        start "$s" >/dev/null 2>&1 &
        pid=$!
        wait_listening "$s"
        before=$(switches "$pid")
        line=$(timeout 300 "$PROBE" light --addr "$ADDR" -n "$N" -c "$CONNS" --gap-us "$GAP_US")
        after=$(switches "$pid")
        wakeups=$(python3 -c "print(f'{($after - $before) / $N:.2f}')")
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
        echo "round $((r + 1)) $s $line wakeups_per_req=$wakeups" | tee -a "$RESULTS"
    done
done

python3 - "$RESULTS" "${available[@]}" <<'PY'
import re, statistics, sys
path, servers = sys.argv[1], sys.argv[2:]
runs = {s: [] for s in servers}
for line in open(path):
    f = line.split()
    vals = dict(re.findall(r"(\w+)=([\d.]+)", line))
    runs[f[2]].append({k: float(v) for k, v in vals.items()})
keys = ("p50_us", "p99_us", "p999_us", "wakeups_per_req")
med = {s: {k: statistics.median(r[k] for r in runs[s]) for k in keys} for s in servers if runs[s]}
print()
print("| server | p50 µs | p99 µs | p99.9 µs | wake-ups/request | gopark/server p50 | gopark/server p99 |")
print("|---|---:|---:|---:|---:|---:|---:|")
g = med.get("gopark")
for s, m in med.items():
    r50 = f"{g['p50_us'] / m['p50_us']:.2f}" if g else "-"
    r99 = f"{g['p99_us'] / m['p99_us']:.2f}" if g else "-"
    print(f"| {s} | {m['p50_us']:.1f} | {m['p99_us']:.1f} | {m['p999_us']:.0f} | {m['wakeups_per_req']:.2f} | {r50} | {r99} |")
PY
