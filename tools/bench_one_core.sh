#!/usr/bin/env bash
# An old PC's import (issue 19): `jalin import` of FILE into a fresh data dir pinned to
# one core (`taskset -c 0`) beside the same on two (`taskset -c 0,1`), alternating, RUNS
# times each; prints each run's seconds and peak RSS, the medians, and the ratio (target:
# one core at least half as fast as two, i.e. a time ratio of 2.0 or less).
#
#   cargo build --release -p jalin-cli
#   tools/bench_one_core.sh [FILE] [RUNS]      (default: the 10,000 LC records, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
file=$(realpath "${1:-../shared/data/marc/loc/loc-books-10k.mrc}")
runs=${2:-3}
bin=$PWD/target/release/jalin
[ -x "$bin" ] || { echo "build it first: cargo build --release -p jalin-cli" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A times
for run in $(seq 1 "$runs"); do
  for cores in 0 0,1; do
    data="$work/$run-$cores"
    "$bin" --data-dir "$data" init --name "Perpustakaan Uji" --code UJI >/dev/null
    /usr/bin/time -o "$work/time" -f "%e %M" taskset -c "$cores" \
      "$bin" --data-dir "$data" import "$file" >/dev/null 2>&1
    read -r secs kb < "$work/time"
    echo "run $run, cores $cores: ${secs} s, peak RSS $((kb / 1024)) MB"
    times[$cores]+="$secs "
    rm -rf "$data"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
one=$(median "${times[0]}")
two=$(median "${times[0,1]}")
echo "median: one core ${one} s, two cores ${two} s, ratio $(awk -v a="$one" -v b="$two" 'BEGIN {printf "%.2f", a/b}')"
