#!/usr/bin/env bash
# Runs every benchmark program; each prints Markdown tables of medlens versus its peer.
set -euo pipefail
build=${1:-build}
for b in "$build"/bench/bench_*; do
  echo "== $(basename "$b")"
  "$b" --benchmark_counters_tabular=true
done
