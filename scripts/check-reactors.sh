#!/usr/bin/env bash
# gopark's netpoller must be the only reactor in a program built on it.
# Fails if gopark's own dependency tree (normal dependencies, every feature
# of gopark on; dev-dependencies do not count) enables a tokio feature that
# starts a runtime, a reactor or a clock, or pulls in another reactor crate.
#
#   bash scripts/check-reactors.sh
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden_features='rt|rt-multi-thread|net|time|process|signal|fs'
forbidden_crates='mio|async-io|polling|async-std|smol'

tree() {
    cargo tree --quiet --offline -p gopark --all-features --target all "$@" 2>/dev/null ||
        cargo tree --quiet -p gopark --all-features --target all "$@"
}

status=0
# Every package of the normal tree, one per line ("name vX.Y.Z ...").
packages=$(tree -e normal --prefix none --format '{p}')

if grep -Eq '^tokio v' <<<"$packages"; then
    # Feature nodes read `tokio feature "rt"`.
    bad=$(tree -e normal,features -i tokio --prefix none --format '{p}' |
        grep -Eo "^tokio feature \"($forbidden_features)\"" | sort -u || true)
    if [[ -n "$bad" ]]; then
        echo "check-reactors: tokio features that start a reactor or a clock are on:" >&2
        echo "$bad" >&2
        echo "(see: cargo tree -p gopark --all-features -e normal,features -i tokio)" >&2
        status=1
    else
        echo "check-reactors: tokio is present with trait-only features"
    fi
else
    echo "check-reactors: tokio is not in the tree"
fi

crates=$(grep -Eo "^($forbidden_crates) v[^ ]*" <<<"$packages" | sort -u || true)
if [[ -n "$crates" ]]; then
    echo "check-reactors: reactor crates in gopark's dependency tree:" >&2
    echo "$crates" >&2
    status=1
fi
exit $status
