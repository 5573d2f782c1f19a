#!/usr/bin/env bash
# hyper on gopark vs hyper on tokio: the same hyper service under the same
# load, in the same run, taking turns.
#
#   bash scripts/hyper-compare.sh                       # 5 rounds of 5 s
#   ROUNDS=3 DURATION=3s bash scripts/hyper-compare.sh  # a quick run
#   GEN=wrk bash scripts/hyper-compare.sh               # wrk as the generator
#
# The two servers:
#   gopark  examples/hyper (built with --features hyper): gopark's accept
#           loop, hyper-util's `auto` builder, gopark::hyper::{Io, Executor,
#           Timer}.
#   tokio   benches/tokio-hyper: the same service file
#           (examples/hyper/service.rs), the same builder settings and
#           graceful-shutdown wrapper, with hyper-util's TokioIo,
#           TokioExecutor and TokioTimer on a multi-thread tokio runtime.
# Both answer `GET /` with `Hello, World!`; the script checks that they do
# before it measures.
#
# Each round starts each server alone, pinned (taskset) to SERVER_CPUS with
# WORKERS worker threads, runs WARMUP of unmeasured load, then DURATION of
# measured load from a generator pinned to LOAD_CPUS, and stops the server.
# Odd rounds run gopark first, even rounds tokio first. The generator is
# gopark's own `load` example (HTTP/1.1 keep-alive GET /, CONNS connections,
# HDR latency percentiles) or, with GEN=wrk, wrk. Every step is bounded in
# time, and a trap stops whatever is still running on exit.
#
# It prints one line per run and a markdown table: medians of requests/s
# and p99 latency per server, the gopark/tokio ratio of the medians, the
# range of the per-round ratios, and CPU time per request (user + system,
# all the server's threads, from /proc/PID/stat). Every run goes to
# target/hyper-compare/runs.csv.
#
# Environment (defaults in brackets):
#   DURATION [5s]  WARMUP [1s]  ROUNDS [5]  CONNS [100]  GEN [load]
#   SERVER_CPUS [0]  LOAD_CPUS [1, or 1-(N-1)]  WORKERS [1]  LOAD_WORKERS
#   [number of LOAD_CPUS]  PIN [1 if taskset exists and N >= 2]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-100}
GEN=${GEN:-load}
WORKERS=${WORKERS:-1}

NCPU=$(nproc 2>/dev/null || echo 1)
if [[ -z ${PIN:-} ]]; then
    if command -v taskset >/dev/null && ((NCPU >= 2)); then PIN=1; else PIN=0; fi
fi
SERVER_CPUS=${SERVER_CPUS:-0}
if ((NCPU <= 2)); then LOAD_CPUS=${LOAD_CPUS:-1}; else LOAD_CPUS=${LOAD_CPUS:-1-$((NCPU - 1))}; fi
if ((PIN)); then
    if [[ $LOAD_CPUS == *-* ]]; then
        LOAD_WORKERS=${LOAD_WORKERS:-$((${LOAD_CPUS#*-} - ${LOAD_CPUS%-*} + 1))}
    else
        LOAD_WORKERS=${LOAD_WORKERS:-1}
    fi
    PIN_SERVER=(taskset -c "$SERVER_CPUS")
    PIN_LOAD=(taskset -c "$LOAD_CPUS")
else
    LOAD_WORKERS=${LOAD_WORKERS:-$NCPU}
    PIN_SERVER=()
    PIN_LOAD=()
fi
case $GEN in
    load) ;;
    wrk) command -v wrk >/dev/null || { echo "hyper-compare: wrk is not installed (apt-get install wrk)" >&2; exit 1; } ;;
    *) echo "hyper-compare: GEN must be load or wrk" >&2; exit 2 ;;
esac

secs() { # 5s, 500ms, 1m -> whole seconds, rounded up
    local v=$1 n=${1%%[a-z]*}
    case ${v#"$n"} in
        ms) echo $(((n + 999) / 1000)) ;;
        s | "") echo "$n" ;;
        m) echo $((n * 60)) ;;
        *) echo "hyper-compare: bad duration '$v'" >&2; exit 2 ;;
    esac
}
DUR_S=$(secs "$DURATION")

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=target/hyper-compare
mkdir -p "$WORK"
LOGS=$(mktemp -d "$WORK/run-XXXXXX")

SERVER_PID=
cleanup() { [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
trap 'echo "hyper-compare: interrupted" >&2; exit 130' INT TERM

echo "== build (release)" >&2
cargo build --release --quiet --features hyper --example hyper --example load
CARGO_TARGET_DIR=target cargo build --release --quiet --manifest-path benches/tokio-hyper/Cargo.toml
declare -A BIN=([gopark]=target/release/examples/hyper [tokio]=target/release/tokio_hyper)
LOAD=target/release/examples/load

start_server() { # KIND TAG: sets SERVER_PID and SERVER_ADDR
    local log="$LOGS/server-$1-$2.log" i
    # A log of its own, empty before the server starts: the address read
    # below is this server's, never a previous one's.
    : >"$log"
    "${PIN_SERVER[@]}" "${BIN[$1]}" --addr 127.0.0.1:0 --workers "$WORKERS" >"$log" 2>&1 &
    SERVER_PID=$!
    for ((i = 0; i < 100; i++)); do
        SERVER_ADDR=$(sed -n 's|^listening on http://||p' "$log" | head -n1)
        [[ -n $SERVER_ADDR ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "hyper-compare: the $1 server did not start:" >&2
    cat "$log" >&2
    exit 1
}

stop_server() {
    local i
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# The status line and body of GET /, over a plain socket.
fetch() {
    local host=${1%:*} port=${1##*:}
    timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port
        printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
        cat <&3" | tr -d '\r' | awk 'NR == 1 { print } body { print } /^$/ { body = 1 }'
}

# run_gen OUT DURATION: the generator against SERVER_ADDR, bounded in time;
# prints "REQ_PER_S P99_MS ERRORS".
run_gen() {
    local out=$1 dur=$2 limit=$(($(secs "$2") + 30))
    if [[ $GEN == wrk ]]; then
        "${PIN_LOAD[@]}" timeout -k 5 "$limit" wrk -t "$LOAD_WORKERS" -c "$CONNS" -d "$dur" \
            --latency "http://$SERVER_ADDR/" >"$out" 2>&1 || return 1
        awk '
            /Requests\/sec:/ { rps = $2 }
            /^ +99%/ { v = $2; if (v ~ /us$/) p = v / 1000; else if (v ~ /ms$/) p = v + 0; else p = v * 1000 }
            /Non-2xx|Socket errors/ { err = 1 }
            END { printf "%s %.3f %d\n", rps, p, err }' "$out"
    else
        "${PIN_LOAD[@]}" timeout -k 5 "$limit" "$LOAD" http --addr "$SERVER_ADDR" -c "$CONNS" \
            -d "$dur" --workers "$LOAD_WORKERS" >"$out" 2>"$out.err" || return 1
        awk '
            /^requests:/ { rps = $4 }
            /^latency:/ { for (i = 1; i <= NF; i++) if ($i == "p99") p = $(i + 1) }
            /^errors:/ { err = $2 }
            END { printf "%s %s %s\n", rps, p, err }' "$out"
    fi
}

cpu_ticks() { # user + system ticks of all of PID's threads
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ---------------------------------------------------------------- same answer
declare -A ANSWER
for kind in gopark tokio; do
    start_server "$kind" check
    ANSWER[$kind]=$(fetch "$SERVER_ADDR" || echo "fetch failed")
    stop_server
done
if [[ ${ANSWER[gopark]} != "${ANSWER[tokio]}" || ${ANSWER[gopark]} != *"Hello, World!"* ]]; then
    echo "hyper-compare: the servers answer GET / differently:" >&2
    printf '  gopark: %s\n  tokio:  %s\n' "${ANSWER[gopark]}" "${ANSWER[tokio]}" >&2
    exit 1
fi

# ---------------------------------------------------------------- runs
CSV=$WORK/runs.csv
echo "round,server,req_per_s,p99_ms,errors,cpu_us_per_req,loadavg" >"$CSV"
echo "== $(date -u '+%F %H:%M UTC'), $(uname -r), $NCPU CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1))" >&2
echo "== server: CPUs $SERVER_CPUS, $WORKERS worker(s); $GEN: CPUs $LOAD_CPUS, $LOAD_WORKERS thread(s), $CONNS connections [pinned=$PIN]" >&2
echo "== $ROUNDS round(s) of $DURATION (+ $WARMUP warm-up) per server, alternating; logs in $LOGS" >&2

for ((round = 1; round <= ROUNDS; round++)); do
    order=(gopark tokio)
    ((round % 2 == 0)) && order=(tokio gopark)
    for kind in "${order[@]}"; do
        start_server "$kind" "$round"
        [[ $WARMUP != 0 ]] && { run_gen "$LOGS/$kind-$round.warmup" "$WARMUP" >/dev/null || true; }
        la=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(cpu_ticks "$SERVER_PID")
        if ! result=$(run_gen "$LOGS/$kind-$round.txt" "$DURATION"); then
            echo "hyper-compare: the generator failed, see $LOGS/$kind-$round.txt" >&2
            stop_server
            continue
        fi
        t1=$(cpu_ticks "$SERVER_PID")
        stop_server
        read -r rps p99 errors <<<"$result"
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$rps" -v d="$DUR_S" \
            'BEGIN { printf "%.2f", (r > 0) ? t / hz * 1e6 / (r * d) : 0 }')
        echo "$round,$kind,$rps,$p99,$errors,$cpu,$la" >>"$CSV"
        printf '   round %d %-6s %10.0f req/s  p99 %7.3f ms  %6.2f us CPU/req  errors %s  load %s\n' \
            "$round" "$kind" "$rps" "$p99" "$cpu" "$errors" "$la" >&2
    done
done

# ---------------------------------------------------------------- report
echo >&2
awk -F, -v conns="$CONNS" -v gen="$GEN" '
    NR > 1 { n[$2]++; rps[$2, n[$2]] = $3; p99[$2, n[$2]] = $4; cpu[$2, n[$2]] = $6; by[$1, $2] = $3 }
    function median(arr, k, cnt,   i, j, t, v) {
        for (i = 1; i <= cnt; i++) v[i] = arr[k, i]
        for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return (cnt % 2) ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    }
    END {
        g = median(rps, "gopark", n["gopark"]); t = median(rps, "tokio", n["tokio"])
        lo = 1e9; hi = 0
        for (r = 1; r <= n["gopark"]; r++) if (by[r, "tokio"] > 0) {
            x = by[r, "gopark"] / by[r, "tokio"]; if (x < lo) lo = x; if (x > hi) hi = x
        }
        printf "| server | req/s (median) | p99 ms (median) | CPU us/req (median) |\n|---|---:|---:|---:|\n"
        printf "| hyper on gopark | %.0f | %.3f | %.2f |\n", g, median(p99, "gopark", n["gopark"]), median(cpu, "gopark", n["gopark"])
        printf "| hyper on tokio | %.0f | %.3f | %.2f |\n", t, median(p99, "tokio", n["tokio"]), median(cpu, "tokio", n["tokio"])
        printf "\ngopark/tokio requests/s: %.2fx (medians of %d rounds; per-round ratios %.2f-%.2f), %s, %d connections\n", \
            g / t, n["gopark"], lo, hi, gen, conns
    }' "$CSV"
