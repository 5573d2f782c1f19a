#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (the HTTP example's request parser
# and framing, and its chunked decoder) for a given time each, on stable
# Rust (no sanitizer: `-s none`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 1800 s, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). New inputs go to
# fuzz/corpus/TARGET/ (committed; shrink it with `cargo fuzz cmin -s none
# TARGET`); a crash is saved under fuzz/artifacts/TARGET/ and fails the run.
# Each run's log is fuzz/artifacts/TARGET.log; its last lines give the
# execution count.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${1:-1800}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
command -v cargo-fuzz >/dev/null || {
    echo "fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 1
}

mkdir -p fuzz/artifacts
status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/artifacts/$target.log"
    echo "fuzz.sh: $target for ${seconds}s (log: $log)"
    if cargo fuzz run -s none --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -dict=fuzz/http.dict -max_len=12288 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        echo "fuzz.sh: $target: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs, no crash"
    else
        echo "fuzz.sh: $target FAILED: see $log" >&2
        tail -n 40 "$log" >&2
        status=1
    fi
done
exit $status
