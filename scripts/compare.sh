#!/usr/bin/env bash
# gopark vs tokio vs raw-epoll vs Go: the same echo and HTTP workloads, the
# same load generator (gopark's own `load` example), one server at a time,
# on loopback.
#
#   bash scripts/compare.sh                 # 10 s per run, every server
#   DURATION=3s bash scripts/compare.sh     # a quick run
#
# What it does:
#
# 1. Builds, in release, gopark's `echo`, `http` and `load` examples and
#    their bench-only tokio twins `tokio_echo`/`tokio_http`
#    (benches/servers/); the `raw-epoll` yardstick (a server with no
#    runtime at all: one edge-triggered epoll loop per thread, from
#    $RAW_EPOLL_DIR, built into target/compare/); and, if `go` is
#    installed, scripts/go/echo.go and scripts/go/http.go. Without `go` or
#    raw-epoll's source, their column says "-".
# 2. For every workload and every server: starts the server alone
#    (loopback), runs a warm-up, then the measured run, then stops the
#    server (SIGTERM, SIGKILL after 5 s). Round r starts with the r-th
#    server of the list and goes round from there, so no server always
#    runs first (or last, after the machine warmed up). Every step is
#    bounded in time and a trap stops whatever is still running on exit.
# 3. Writes one row per run to docs/compare.csv and prints a markdown table
#    of medians (also in docs/compare.md) with the ratios (gopark against
#    tokio, raw-epoll and Go) and p99 latencies, and draws docs/compare.svg
#    (scripts/compare_report.py: the tables need only python3, the chart
#    matplotlib; without it the script says how to draw it later). A second
#    table gives what each request cost the server: CPU time (user +
#    system, all threads, from /proc/PID/stat) and context switches
#    (/proc/PID/task/*/status) per request, and the share of its CPUs the
#    server and the generator used (CPU time / wall time). On a shared
#    machine requests/s moves with whatever else runs; CPU time per request
#    much less, so look at both. A server that got well under 100% of its CPUs
#    was starved (by other work, or by a generator that could not keep up).
# 4. If `wrk` is installed, checks that the load generator is not the
#    bottleneck: wrk and `load` with the same connections, threads and CPUs
#    against the tokio HTTP server, taking turns on one server instance,
#    ROUNDS times, medians side by side (docs/compare-wrk.csv).
#
# Fairness. Each server gets the same CPUs and the same worker count, the
# load generator gets the other CPUs. By default, on a machine with N >= 2
# CPUs, the server is pinned (taskset) to CPU 0 with one worker thread
# (gopark: GOPARK_WORKERS / --workers, tokio: --workers, raw-epoll: its
# THREADS argument, Go: GOMAXPROCS)
# and the generator to CPUs 1..N-1 with one worker per CPU. All of a
# server's threads (gopark's netpoll thread, Go's sysmon, tokio's blocking
# pool) live on its CPUs, so the figures compare what each runtime gets
# out of the same cores; the generator never competes with the server for
# a CPU. Without taskset (or with PIN=0) nothing is pinned.
#
# Environment (defaults in brackets):
#   DURATION      measured time per run [10s]
#   WARMUP        unmeasured run before each measured one, 0 for none [1s]
#   ROUNDS        runs per server per workload; the table shows medians [1]
#   SERVERS       which servers [gopark tokio raw-epoll go]
#   RAW_EPOLL_DIR source of the raw-epoll yardstick [benches/raw-epoll]
#   WORKLOADS     [echo-64-100 echo-64-1000 http-100 http-1000]; also
#                 http-pK-C (pipeline K) and echo-SIZE-C
#   SERVER_CPUS   CPUs of the server [0]        LOAD_CPUS [1-(N-1)]
#   WORKERS       server worker threads [number of SERVER_CPUS]
#   LOAD_WORKERS  load generator workers [number of LOAD_CPUS]
#   PIN           1 to pin with taskset, 0 not to [1 if taskset and N >= 2]
#   WRK           auto (run the check when wrk is installed), 0, or 1 [auto]
#   PERF          1: `perf stat` each server during its measured run and
#                 report CPU time, context switches and syscalls per
#                 request [0]
#   OUT           output directory [docs]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-gopark tokio raw-epoll go}
RAW_EPOLL_DIR=${RAW_EPOLL_DIR:-benches/raw-epoll}
WORKLOADS=${WORKLOADS:-echo-64-100 echo-64-1000 http-100 http-1000}
WRK=${WRK:-auto}
PERF=${PERF:-0}
OUT=${OUT:-docs}

NCPU=$(nproc 2>/dev/null || echo 1)
if [[ -z ${PIN:-} ]]; then
    if command -v taskset >/dev/null && ((NCPU >= 2)); then PIN=1; else PIN=0; fi
fi
if ((NCPU >= 2)); then
    SERVER_CPUS=${SERVER_CPUS:-0}
    if ((NCPU == 2)); then LOAD_CPUS=${LOAD_CPUS:-1}; else LOAD_CPUS=${LOAD_CPUS:-1-$((NCPU - 1))}; fi
else
    SERVER_CPUS=${SERVER_CPUS:-0}
    LOAD_CPUS=${LOAD_CPUS:-0}
fi

# Number of CPUs in a taskset list such as "0", "1-3" or "0,2-3".
cpu_count() {
    local n=0 part
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then n=$((n + ${part#*-} - ${part%-*} + 1)); else n=$((n + 1)); fi
    done
    echo "$n"
}
if ((PIN)); then
    WORKERS=${WORKERS:-$(cpu_count "$SERVER_CPUS")}
    LOAD_WORKERS=${LOAD_WORKERS:-$(cpu_count "$LOAD_CPUS")}
else
    WORKERS=${WORKERS:-$NCPU}
    LOAD_WORKERS=${LOAD_WORKERS:-$NCPU}
fi

# Seconds (rounded up) in a duration such as 10s, 500ms, 2m or 3.
dur_secs() {
    local v=$1 num unit
    num=${v%%[a-z]*}
    unit=${v#"$num"}
    case $unit in
        ms) awk -v n="$num" 'BEGIN { s = n / 1000; print (s == int(s)) ? s : int(s) + 1 }' ;;
        s | "") awk -v n="$num" 'BEGIN { print (n == int(n)) ? n : int(n) + 1 }' ;;
        m) awk -v n="$num" 'BEGIN { s = n * 60; print (s == int(s)) ? s : int(s) + 1 }' ;;
        *) echo "compare: bad duration '$v'" >&2; exit 2 ;;
    esac
}
DUR_S=$(dur_secs "$DURATION")
WARM_S=0
[[ $WARMUP != 0 ]] && WARM_S=$(dur_secs "$WARMUP")

command -v python3 >/dev/null || { echo "compare: python3 is needed for the report" >&2; exit 1; }

# Many connections: raise the descriptor limit for us and our children
# (wrk does not raise its own).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Command prefixes that pin to the server's and the generator's CPUs.
PIN_SERVER=()
PIN_LOAD=()
if ((PIN)); then
    PIN_SERVER=(taskset -c "$SERVER_CPUS")
    PIN_LOAD=(taskset -c "$LOAD_CPUS")
fi

WORK=target/compare
mkdir -p "$WORK" "$OUT"
LOGS=$(mktemp -d "$WORK/run-XXXXXX")

SERVER_PID=
PERF_PID=
cleanup() {
    [[ -n $PERF_PID ]] && kill -INT "$PERF_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "compare: interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- build
echo "== build (release)" >&2
cargo build --release --quiet \
    --example echo --example http --example load \
    --example tokio_echo --example tokio_http
BIN=target/release/examples
HAVE_RAW=0
if [[ " $SERVERS " == *" raw-epoll "* ]]; then
    if [[ -f $RAW_EPOLL_DIR/Cargo.toml ]]; then
        # Its own target directory: the source folder may be read-only.
        if CARGO_TARGET_DIR="$WORK/raw-epoll-target" cargo build --release --quiet \
            --manifest-path "$RAW_EPOLL_DIR/Cargo.toml"; then
            RAW_EPOLL="$WORK/raw-epoll-target/release/raw-epoll"
            HAVE_RAW=1
        else
            echo "compare: raw-epoll build failed; skipping raw-epoll" >&2
        fi
    else
        echo "compare: no raw-epoll at $RAW_EPOLL_DIR (set RAW_EPOLL_DIR); skipping raw-epoll" >&2
    fi
fi
HAVE_GO=0
if [[ " $SERVERS " == *" go "* ]]; then
    if command -v go >/dev/null; then
        if go build -o "$WORK/echo-go" scripts/go/echo.go && go build -o "$WORK/http-go" scripts/go/http.go; then
            HAVE_GO=1
        else
            echo "compare: go build failed; skipping Go" >&2
        fi
    else
        echo "compare: go is not installed (apt-get install golang-go); skipping Go" >&2
    fi
fi

# ---------------------------------------------------------------- servers
# A free TCP port on loopback (for raw-epoll, whose threads each bind the
# port they are given, so port 0 would give each its own).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether something accepts connections at ADDR (host:port).
accepting() {
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# start_server KIND PROTO: starts it, sets SERVER_PID and SERVER_ADDR.
start_server() {
    local kind=$1 proto=$2 log="$LOGS/server-$1-$2.log" cmd
    case $kind-$proto in
        # --send-buffer 0: the kernel's send-buffer autotuning, as the Go
        # and raw-epoll servers have (the example's default caps SO_SNDBUF).
        gopark-echo) cmd=(env GOPARK_WORKERS="$WORKERS" "$BIN/echo" 127.0.0.1:0) ;;
        gopark-http) cmd=("$BIN/http" --addr 127.0.0.1:0 --workers "$WORKERS" --send-buffer 0) ;;
        tokio-echo) cmd=("$BIN/tokio_echo" 127.0.0.1:0 --workers "$WORKERS") ;;
        tokio-http) cmd=("$BIN/tokio_http" --addr 127.0.0.1:0 --workers "$WORKERS" --send-buffer 0) ;;
        raw-epoll-*) cmd=("$RAW_EPOLL" "$proto" "127.0.0.1:$(free_port)" "$WORKERS") ;;
        go-echo) cmd=(env GOMAXPROCS="$WORKERS" "$WORK/echo-go" -workers "$WORKERS" 127.0.0.1:0) ;;
        go-http) cmd=(env GOMAXPROCS="$WORKERS" "$WORK/http-go" -addr 127.0.0.1:0 -workers "$WORKERS") ;;
    esac
    : >"$log"
    # A simple command, so $! is the server itself (taskset and env exec).
    "${PIN_SERVER[@]}" "${cmd[@]}" >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_ADDR=
    local i
    for ((i = 0; i < 100; i++)); do
        # "listening on [http://]ADDR[ with N threads]"
        SERVER_ADDR=$(sed -n 's|^listening on \(http://\)\{0,1\}\([^ ]*\).*|\2|p' "$log" | head -n1) || true
        # raw-epoll says so before its threads have bound: wait for them.
        [[ -n $SERVER_ADDR ]] && accepting "$SERVER_ADDR" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "compare: $kind $proto server did not start:" >&2
    cat "$log" >&2
    exit 1
}

stop_server() {
    [[ -z $SERVER_PID ]] && return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# run_load OUTFILE DURATION PROTO CONNS ARG: the generator, bounded in time.
# OUTFILE.time gets its "user system real" seconds.
run_load() {
    local out=$1 dur=$2 proto=$3 conns=$4 arg=$5 extra=() rc=0
    case $proto in
        echo) extra=(-s "$arg") ;;
        http) extra=(--pipeline "$arg") ;;
    esac
    local limit=$(($(dur_secs "$dur") + 30)) TIMEFORMAT='%U %S %R'
    { time "${PIN_LOAD[@]}" timeout -k 5 "$limit" "$BIN/load" "$proto" --addr "$SERVER_ADDR" \
        -c "$conns" -d "$dur" --workers "$LOAD_WORKERS" "${extra[@]}" >"$out" 2>"$out.err" || rc=$?; } 2>"$out.time"
    if ((rc != 0)); then
        echo "compare: load failed (exit $rc), see $out.err" >&2
        return 1
    fi
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

# "CPU_TICKS CTX_SWITCHES" of a process: user+system time of all its threads
# (/proc/PID/stat, in clock ticks) and the context switches of its live
# threads (/proc/PID/task/*/status). Cheap enough to read around every run.
proc_usage() {
    local pid=$1 stat ticks cs
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || { echo "0 0"; return; }
    stat=${stat##*) }
    ticks=$(awk '{ print $12 + $13 }' <<<"$stat")
    cs=$(cat /proc/"$pid"/task/*/status 2>/dev/null |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }')
    echo "$ticks $cs"
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ---------------------------------------------------------------- same bytes
# The tokio twin includes the gopark server's parser, framing and renderer;
# check that they answer with the same bytes (Date aside). raw-epoll is a
# yardstick with its own (shorter) replies, and is not checked.
if [[ " $SERVERS " == *" gopark "* && " $SERVERS " == *" tokio "* && " $WORKLOADS " == *" http-"* ]]; then
    start_server gopark http
    gopark_bytes=$(timeout 10 python3 scripts/compare_report.py fetch "$SERVER_ADDR" || echo "fetch failed")
    stop_server
    start_server tokio http
    tokio_bytes=$(timeout 10 python3 scripts/compare_report.py fetch "$SERVER_ADDR" || echo "fetch failed")
    stop_server
    if [[ $gopark_bytes != "$tokio_bytes" ]]; then
        echo "compare: WARNING: the gopark and tokio HTTP servers answer differently:" >&2
        echo "  gopark: $gopark_bytes" >&2
        echo "  tokio:  $tokio_bytes" >&2
    fi
fi

# ---------------------------------------------------------------- runs
CSV="$OUT/compare.csv"
echo "workload,server,round,req_per_s,p50_ms,p99_ms,max_ms,errors,loadavg,load_cpu_util,server_cpu_util,cpu_us_per_req,ctx_switches_per_req,syscalls_per_req" >"$CSV"

PERF_EVENTS=task-clock,context-switches,raw_syscalls:sys_enter
if ((PERF)); then
    if ! command -v perf >/dev/null || ! perf stat -e "$PERF_EVENTS" -x, -- true >/dev/null 2>&1; then
        echo "compare: perf stat (with raw_syscalls:sys_enter) is unavailable; PERF=0" >&2
        PERF=0
    fi
fi

echo "== $(date -u +%FT%TZ)  $NCPU CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if ((PIN)); then
    echo "== server: CPUs $SERVER_CPUS, $WORKERS worker(s); load generator: CPUs $LOAD_CPUS, $LOAD_WORKERS worker(s)" >&2
else
    echo "== not pinned; server: $WORKERS worker(s); load generator: $LOAD_WORKERS worker(s)" >&2
fi
echo "== $DURATION per run (+ $WARMUP warm-up), $ROUNDS round(s); logs in $LOGS" >&2

# The servers that run, in the order of SERVERS.
ACTIVE=()
for kind in $SERVERS; do
    [[ $kind == go && $HAVE_GO == 0 ]] && continue
    [[ $kind == raw-epoll && $HAVE_RAW == 0 ]] && continue
    ACTIVE+=("$kind")
done

for workload in $WORKLOADS; do
    case $workload in
        echo-*-*) proto=echo; arg=${workload#echo-}; arg=${arg%-*}; conns=${workload##*-} ;;
        http-p*-*) proto=http; arg=${workload#http-p}; arg=${arg%-*}; conns=${workload##*-} ;;
        http-*) proto=http; arg=1; conns=${workload#http-} ;;
        *) echo "compare: unknown workload '$workload'" >&2; exit 2 ;;
    esac
    for ((round = 1; round <= ROUNDS; round++)); do
        # Round r starts with the r-th server and goes round the list.
        n=${#ACTIVE[@]}
        order=()
        for ((i = 0; i < n; i++)); do order+=("${ACTIVE[(round - 1 + i) % n]}"); done
        echo "   round $round: ${order[*]}" >&2
        for kind in "${order[@]}"; do
            start_server "$kind" "$proto"
            res="$LOGS/$workload-$kind-$round.txt"
            if ((WARM_S > 0)); then
                run_load "$res.warmup" "$WARMUP" "$proto" "$conns" "$arg" || true
            fi
            if ((PERF)); then
                perf stat -e "$PERF_EVENTS" -x, -o "$res.perf" -p "$SERVER_PID" &
                PERF_PID=$!
            fi
            la=$(loadavg)
            ok=1
            read -r ticks0 cs0 < <(proc_usage "$SERVER_PID")
            t0=$(date +%s.%N)
            run_load "$res" "$DURATION" "$proto" "$conns" "$arg" || ok=0
            t1=$(date +%s.%N)
            read -r ticks1 cs1 < <(proc_usage "$SERVER_PID")
            if [[ -n $PERF_PID ]]; then
                kill -INT "$PERF_PID" 2>/dev/null || true
                wait "$PERF_PID" 2>/dev/null || true
                PERF_PID=
            fi
            stop_server
            ((ok)) || continue
            cpu_s=$(awk -v t="$((ticks1 - ticks0))" -v hz="$CLK_TCK" 'BEGIN { print t / hz }')
            wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
            python3 scripts/compare_report.py parse "$res" "$workload" "$kind" "$round" "$la" \
                "$cpu_s" "$wall_s" "$((cs1 - cs0))" "$(cat "$res.time")" >>"$CSV"
            echo "   $(tail -n1 "$CSV")" >&2
        done
    done
done

echo >&2
python3 scripts/compare_report.py report "$CSV" "$OUT/compare.svg" "$OUT/compare.md" \
    "$NCPU CPUs; server on CPUs ${SERVER_CPUS} ($WORKERS worker(s)), load on CPUs ${LOAD_CPUS} ($LOAD_WORKERS worker(s)) [pinned=$PIN]; $DURATION per run, $ROUNDS round(s)"

# ---------------------------------------------------------------- wrk check
if [[ $WRK == auto ]]; then
    if command -v wrk >/dev/null; then WRK=1; else WRK=0; fi
fi
if ((WRK)); then
    if ! command -v wrk >/dev/null; then
        echo "compare: wrk is not installed (apt-get install wrk); no generator check" >&2
    else
        echo >&2
        echo "== load generator check: wrk vs load, same connections/threads/CPUs, tokio HTTP server" >&2
        WCSV="$OUT/compare-wrk.csv"
        echo "connections,generator,round,req_per_s,p99_ms,loadavg" >"$WCSV"
        wrk_conns=()
        for workload in $WORKLOADS; do
            [[ $workload == http-[0-9]* ]] && wrk_conns+=("${workload#http-}")
        done
        for conns in "${wrk_conns[@]}"; do
            for ((round = 1; round <= ROUNDS; round++)); do
                # One server for both generators, which take turns going first.
                start_server tokio http
                if ((WARM_S > 0)); then
                    run_load "$LOGS/wrk-$conns-$round.warmup" "$WARMUP" http "$conns" 1 || true
                fi
                order=(wrk load)
                ((round % 2 == 0)) && order=(load wrk)
                for gen in "${order[@]}"; do
                    la=$(loadavg)
                    res="$LOGS/$gen-$conns-$round.txt"
                    if [[ $gen == wrk ]]; then
                        if "${PIN_LOAD[@]}" timeout -k 5 "$((DUR_S + 30))" wrk -t "$LOAD_WORKERS" -c "$conns" \
                            -d "$DURATION" --latency "http://$SERVER_ADDR/" >"$res" 2>&1; then
                            python3 scripts/compare_report.py parse-wrk "$res" "$conns" "$la" |
                                awk -F, -v r="$round" '{ print $1 "," $2 "," r "," $3 "," $4 "," $5 }' >>"$WCSV"
                        else
                            echo "compare: wrk failed, see $res" >&2
                        fi
                    elif run_load "$res" "$DURATION" http "$conns" 1; then
                        python3 scripts/compare_report.py parse "$res" "http-$conns" load "$round" "$la" 0 1 0 "" |
                            awk -F, -v c="$conns" '{ print c ",load," $3 "," $4 "," $6 "," $9 }' >>"$WCSV"
                    fi
                done
                stop_server
            done
        done
        python3 scripts/compare_report.py report-wrk "$WCSV" | tee "$OUT/compare-wrk.md"
    fi
fi
