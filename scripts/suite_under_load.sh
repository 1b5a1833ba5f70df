#!/usr/bin/env bash
# Run the whole CI suite N times in a row from a clean clone of HEAD while two CPU hogs
# (busy loops) compete for the cores, and stop at the first failure.
#
#   scripts/suite_under_load.sh [RUNS]      # default 5
#
# Each run is `CI=true bash .ci/run` in a fresh clone (its own .venv), so nothing from this
# checkout leaks in. The hogs run at normal priority and are ended when the script exits.
set -euo pipefail
runs=${1:-5}
repo=$(git rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
work=$(mktemp -d /tmp/hypercare-load.XXXXXX)
hogs=()
cleanup() {
    for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
for _ in 1 2; do
    # bounded: a hog ends by itself after 3 hours even if this script is killed with -9
    timeout 3h sh -c 'while :; do :; done' &
    hogs+=("$!")
done
echo "commit $commit, $runs runs, hogs ${hogs[*]}, logs in $work"
for i in $(seq 1 "$runs"); do
    clone="$work/run-$i"
    git clone -q "$repo" "$clone"
    git -C "$clone" checkout -q "$commit"
    start=$(date +%s)
    if (cd "$clone" && CI=true bash .ci/run) >"$work/run-$i.log" 2>&1; then
        echo "run $i: passed in $(( $(date +%s) - start )) s: $(grep -E '^=+ .*(passed|failed).* =+$' "$work/run-$i.log" | tail -1)"
    else
        echo "run $i: FAILED after $(( $(date +%s) - start )) s (log: $work/run-$i.log)"
        grep -E '^(FAILED|ERROR) ' "$work/run-$i.log" | head -20 || true
        exit 1
    fi
    rm -rf "$clone"
done
echo "all $runs runs passed"
