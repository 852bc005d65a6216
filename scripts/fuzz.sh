#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ one after the other and writes fuzz/results.md.
#
#   scripts/fuzz.sh [seconds-per-target] [max-runs-per-target]
#
# Defaults: 480 s and 10,000,000 runs per target, whichever comes first. One libFuzzer
# process at a time (no -jobs/-fork), so the machine stays usable for others.
#
# Environment:
#   SANITIZER  cargo-fuzz sanitizer (default "none": our crates forbid unsafe code, and
#              without ASan the targets run about twice as fast)
#   TARGETS    space-separated subset of targets (default: all of them); the rows of the
#              other targets in fuzz/results.md are kept from their last run
#
# Each run starts from the checked-in corpus (fuzz/corpus/<target>) plus the saved crash
# inputs (fuzz/regressions/<target>) in a scratch copy under fuzz/target/corpus-work, so the
# checked-in corpus only changes when someone minimises and copies on purpose. Crash, timeout
# and out-of-memory inputs are copied to fuzz/regressions/<target>/, where the normal test
# suite (crates/tng-fuzz/tests/corpus.rs) replays them. Not run by CI.
set -euo pipefail

seconds="${1:-480}"
runs="${2:-10000000}"
sanitizer="${SANITIZER:-none}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

all_targets=(metadata chunked_request chunked_response bhttp key_config as_token aa_response config ratstls_cert connect_stream)
read -r -a targets <<< "${TARGETS:-${all_targets[*]}}"

if ! command -v cargo-fuzz > /dev/null 2>&1; then
    cargo install cargo-fuzz
fi
# libFuzzer needs nightly-only flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

cargo fuzz build -s "$sanitizer"

work="fuzz/target/corpus-work"
logs="fuzz/target/logs"
mkdir -p "$work" "$logs"

commit="$(git rev-parse --short HEAD)"
if ! git diff --quiet HEAD -- crates fuzz/fuzz_targets 2> /dev/null; then
    commit="$commit (+ uncommitted changes)"
fi
started="$(date -u +%Y-%m-%dT%H:%MZ)"
declare -A rows=()
failed=0

for target in "${targets[@]}"; do
    corpus="$work/$target"
    rm -rf "$corpus"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    cp fuzz/corpus/"$target"/* "$corpus"/ 2> /dev/null || true
    cp fuzz/regressions/"$target"/* "$corpus"/ 2> /dev/null || true
    # Earlier findings would be counted again.
    rm -f fuzz/artifacts/"$target"/*
    log="$logs/$target.log"
    echo "== $target: up to $seconds s or $runs runs"
    start=$(date +%s)
    status=0
    # stdin from /dev/null: nothing a target does may wait on the terminal.
    cargo fuzz run -s "$sanitizer" "$target" "$corpus" -- \
        -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 < /dev/null > "$log" 2>&1 || status=$?
    duration=$(($(date +%s) - start))

    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    if [ -z "$execs" ]; then
        # A crash ends the run before the final stats: take the last status line.
        execs="$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')"
        rate="$(grep -o 'exec/s: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)"
    fi
    crashes=0
    for artifact in fuzz/artifacts/"$target"/*; do
        [ -e "$artifact" ] || continue
        mkdir -p "fuzz/regressions/$target"
        cp "$artifact" "fuzz/regressions/$target/"
        crashes=$((crashes + 1))
    done
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        # libFuzzer failed without leaving an input (build or setup problem).
        crashes="error (exit $status, see $log)"
        failed=1
    elif [ "$crashes" -ne 0 ]; then
        failed=1
    fi
    corpus_size="$(find "$corpus" -type f | wc -l)"
    echo "   $execs runs, $rate exec/s, crashes: $crashes, corpus $corpus_size, ${duration}s"
    rows[$target]="| $target | ${execs:-0} | ${rate:-0} | $crashes | $corpus_size | $duration | $(date -u +%Y-%m-%dT%H:%MZ) | $commit |"
done

{
    echo "# Fuzzing results"
    echo
    echo "Written by \`scripts/fuzz.sh $seconds $runs\`: each target runs until $runs executions"
    echo "or $seconds s, one libFuzzer process at a time, sanitizer \`$sanitizer\`, debug"
    echo "assertions and overflow checks on. Corpus = files after the run (checked-in seeds +"
    echo "what the run added). Crash inputs are kept in \`fuzz/regressions/<target>/\`."
    echo
    echo "- last started: $started (rows carry their own finish time and commit)"
    echo "- machine: $(nproc) cores ($(uname -m)), shared with other work while running"
    echo "- toolchain: $(rustc --version), $(cargo fuzz --version)"
    echo
    echo "| target | executions | exec/s | crashes | corpus (files) | duration (s) | finished | commit |"
    echo "|---|---:|---:|---:|---:|---:|---|---|"
    for target in "${all_targets[@]}"; do
        if [ -n "${rows[$target]:-}" ]; then
            echo "${rows[$target]}"
        elif [ -f fuzz/results.md ]; then
            # Not run this time (TARGETS): keep the row of its last run.
            grep "^| $target |" fuzz/results.md || true
        fi
    done
    # Hand-written notes below the table survive the rewrite.
    if [ -f fuzz/results.md ] && grep -q '^## Notes' fuzz/results.md; then
        echo
        sed -n '/^## Notes/,$p' fuzz/results.md
    fi
} > fuzz/results.md.new
mv fuzz/results.md.new fuzz/results.md

echo "results: fuzz/results.md"
exit "$failed"
