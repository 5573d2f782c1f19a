#!/usr/bin/env bash
# The hostile-input tests of the HTTP example (tests/examples_http_hostile.rs)
# at full size, release build, one at a time, printing their figures:
# oversized heads, 1,000 oversized clients and the server's RSS, the
# malformed and smuggling corpora, slowloris with 200 and with 2,000
# clients at 1 byte/s (the second #[ignore]d in the default run), and a
# client that pipelines 10,000 requests without reading.
#
#   scripts/http-hostile.sh [TEST-NAME-FILTER]
#
# Needs a file-descriptor limit above 4,100 (the 2,000-client test holds
# 2,000 sockets in the test and 2,000 in the server).
set -euo pipefail

cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --examples
cargo test --release --test examples_http_hostile -- \
    --include-ignored --nocapture --test-threads 1 "$@"
