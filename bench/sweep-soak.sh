#!/usr/bin/env bash
# A longer search of the sweep property test (test/sweeps/properties.test.ts): more generated shapes, a seed per
# round. Each failure prints its counterexample and seed; replay one with KAON_SWEEP_PROP_SEED=<seed>.
#   bash bench/sweep-soak.sh [rounds] [runs per round]      (default 5 × 40)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
runs="${2:-40}"
for r in $(seq 1 "$rounds"); do
  seed=$((RANDOM * 32768 + RANDOM))
  echo "== soak round $r: $runs shapes, seed $seed"
  KAON_SWEEP_PROP_RUNS="$runs" KAON_SWEEP_PROP_SEED="$seed" npx tsx test/run.ts test/sweeps/properties.test.ts
done
