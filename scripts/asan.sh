#!/usr/bin/env bash
# AddressSanitizer run of the runtime's and net crate's tests (not in the
# default CI: it needs nightly flags, enabled on the stable toolchain with
# RUSTC_BOOTSTRAP, and it is slow).
#
#   bash scripts/asan.sh            # lib tests + integration tests
#   bash scripts/asan.sh --test tcp_echo   # extra cargo test arguments
#
# Only our code and its dependencies are instrumented (std is not rebuilt),
# so the run finds heap misuse in the runtime's own unsafe code: the task
# cell, the PollDesc halves, the sockaddr plumbing.
set -euo pipefail
cd "$(dirname "$0")/.."

target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export CARGO_TARGET_DIR=target/asan

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    # The example tests start child processes and measure RSS, which ASan's
    # shadow memory distorts; the library-level suites are what matter here.
    args=(--lib --test 'rt_*' --test 'tcp_*' --test 'netpoll_*' --test 'udp_*' --test 'time_*')
fi
cargo test --target "$target" -p gopark -p gopark-runtime -p gopark-net "${args[@]}"
