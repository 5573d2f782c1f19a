#!/usr/bin/env bash
# The reliability figures of issue 5, full size, in release.
#
# Runs every reliability_* test file in release with --include-ignored:
# the CI-sized tests, the full-size variants (10,000 connections x 1 MiB
# with the client in a child process, 64 MiB each way, 10,000 ping-pong
# iterations per connection, ...) and the tests marked `#[ignore = "bug:
# ..."]`, which fail until their bug is fixed. Prints every FIGURE line,
# then the failed tests; exits 1 if any test failed.
#
#   bash scripts/reliability.sh              # everything
#   bash scripts/reliability.sh load faults  # only reliability_load, reliability_faults
#
# The tests of one file run one at a time (they measure CPU time, context
# switches, descriptors and wake-up latencies of the whole process); run
# the script on an otherwise idle machine for figures worth comparing.
# The full logs go to target/reliability/<file>.log.
set -u
cd "$(dirname "$0")/.."

all=(load faults timers shutdown stress fairness)
if [ $# -gt 0 ]; then files=("$@"); else files=("${all[@]}"); fi

logs=target/reliability
mkdir -p "$logs"

args=()
for f in "${files[@]}"; do args+=(--test "reliability_$f"); done
cargo test --release --no-run "${args[@]}" || exit 1

failed=()
for f in "${files[@]}"; do
    echo "== reliability_$f"
    start=$(date +%s)
    cargo test --release --test "reliability_$f" -- --include-ignored --nocapture --test-threads=1 \
        >"$logs/$f.log" 2>&1
    rc=$?
    echo "   exit $rc in $(($(date +%s) - start)) s"
    [ "$rc" = 0 ] || failed+=("$f")
done

echo
echo "== figures"
for f in "${files[@]}"; do
    grep -o 'FIGURE .*' "$logs/$f.log" | sed 's/^FIGURE //'
done

echo
if [ ${#failed[@]} -eq 0 ]; then
    echo "== all passed"
    exit 0
fi
echo "== failed tests (logs in $logs/)"
for f in "${failed[@]}"; do
    # libtest lists the failed tests after its last "failures:" line.
    awk '/^failures:$/ { n = NR } { line[NR] = $0 } END {
        for (i = n + 1; i in line && line[i] ~ /^    /; i++) print line[i]
    }' "$logs/$f.log" | sed "s/^    /reliability_$f: /"
    grep -A1 -E "^thread '.*' \(.*\) panicked at" "$logs/$f.log" | grep -vE '^(thread|--)' | sed 's/^/    /'
done
exit 1
