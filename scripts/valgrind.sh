#!/usr/bin/env bash
# Runs integration tests under valgrind's memcheck and fails on any leak
# definitely lost or any invalid access.
#
#   bash scripts/valgrind.sh                  # the default set below
#   bash scripts/valgrind.sh tcp_echo rt_join  # chosen test binaries
#
# Needs valgrind (apt-get install -y valgrind). Slow: each binary runs ~50x
# slower than native, so the set is the suites that exercise the unsafe code
# (task cells, PollDesc, shutdown) without long timing loops.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 1; }

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
