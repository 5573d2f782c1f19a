#!/usr/bin/env bash
# Runs integration tests under valgrind's memcheck and fails on any leak
# definitely lost or any invalid access.
#
#   bash scripts/valgrind.sh                  # the default set below
#   bash scripts/valgrind.sh tcp_echo rt_join  # chosen test binaries
#   bash scripts/valgrind.sh --cost [BIN]     # instructions per spawn and per poll
#
# Needs valgrind (apt-get install -y valgrind). Slow: each binary runs ~50x
# slower than native, so the set is the suites that exercise the unsafe code
# (task cells, PollDesc, shutdown) without long timing loops.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 1; }

# --cost: instructions per task of the scheduler bench's workloads, counted
# by callgrind on gopark alone (GOPARK_BENCH_ONLY=gopark) at two iteration
# counts; the difference over the tasks of the extra iterations leaves out
# start-up and warm-up. One worker (COST_WORKERS), so that no second
# worker's spinning or stealing, which depends on timing, is counted. BIN
# defaults to the bench binary built here. Under valgrind the one poll of
# spawn_many_local that spawns 10,000 tasks outlasts the monitor's 10 ms,
# so its figure includes hand-offs of that worker; the others do not.
if [ "${1:-}" = "--cost" ]; then
    bin=${2:-}
    if [ -z "$bin" ]; then
        cargo bench --bench rt_multi_threaded --no-run 2>&1 | tail -1
        bin=$(ls -t target/release/deps/rt_multi_threaded-* | grep -v '\.d$' | head -1)
    fi
    lo=2 hi=${COST_ITERS:-12}
    out=$(mktemp -d)
    # workload, tasks (or polls) per iteration, what is counted
    while read -r name per what; do
        for n in $lo $hi; do
            GOPARK_BENCH_ONLY=gopark GOPARK_BENCH_ITERS=$n \
                GOPARK_BENCH_WORKERS=${COST_WORKERS:-1} valgrind --tool=callgrind \
                --callgrind-out-file="$out"/"$name"-$n.out "$bin" --bench "$name" \
                >/dev/null 2>"$out"/"$name"-$n.log
        done
        a=$(grep -oP 'Collected : \K[0-9]+' "$out"/"$name"-$lo.log)
        b=$(grep -oP 'Collected : \K[0-9]+' "$out"/"$name"-$hi.log)
        echo "$name: $(( (b - a) / (hi - lo) / per )) instructions per $what ($(( (b - a) / (hi - lo) )) per iteration)"
    done <<'LIST'
spawn_many_local 10000 spawn
spawn_many_remote_idle 10000 spawn
chained_spawn 1000 spawn
yield_many 200000 poll
ping_pong 1000 round-trip
LIST
    rm -rf "$out"
    exit 0
fi

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(rt_join rt_spawn rt_shutdown tcp_api tcp_fd_leak netpoll_polldesc udp_basic)

cargo test --release --no-run "${tests[@]/#/--test=}" 2>&1 | tail -1
status=0
for t in "${tests[@]}"; do
    bin=$(ls -t target/release/deps/"$t"-* 2>/dev/null | grep -v '\.d$' | head -1)
    echo "== $t ($bin)"
    if ! valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite "$bin" --test-threads=1 >/tmp/valgrind-"$t".log 2>&1; then
        echo "   FAILED: see /tmp/valgrind-$t.log"
        status=1
    else
        grep -E "test result" /tmp/valgrind-"$t".log || true
    fi
done
exit $status
