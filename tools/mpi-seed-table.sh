#!/usr/bin/env bash
# mpi-seed-table.sh: the demo task (`memloss train`, no flag but --seed and --out) as 1 process and
# as 2 ranks (`mpirun -np 2 -x MEMLOSS_THREADS=1`) for several seeds, one run at a time under
# `nice -n 10`, skipping runs already finished (their eval/test.json exists), then the table of
# docs/distributed.md §8: test accuracy clean / PGD-20 per seed, mean ± sample sd, mean difference.
# It does not build memloss and does not time anything (wall times beside other work are noise).
#
# Usage: tools/mpi-seed-table.sh OUT_DIR [SEED ...]     (default seeds: 1 2 3)
#   MEMLOSS=path/to/memloss (default .build/release/memloss; build with `swift build -c release`)
set -euo pipefail

out=${1:?usage: tools/mpi-seed-table.sh OUT_DIR [SEED ...]}
shift
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
bin=${MEMLOSS:-.build/release/memloss}
[ -x "$bin" ] || { echo "mpi-seed-table: $bin is not an executable; build with swift build -c release or set MEMLOSS" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpi-seed-table: mpirun not on PATH (bash tools/setup.sh installs Open MPI)" >&2; exit 2; }
command -v jq >/dev/null || { echo "mpi-seed-table: jq not on PATH (apt-get install jq)" >&2; exit 2; }
mkdir -p "$out"
# As root Open MPI needs --allow-run-as-root; 2 ranks on 2 cores need --oversubscribe.
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 -x MEMLOSS_THREADS=1)

for s in "${seeds[@]}"; do
    one="$out/one-seed$s" two="$out/two-seed$s"
    if [ ! -f "$one/eval/test.json" ]; then
        echo "mpi-seed-table: seed $s, 1 process -> $one" >&2
        nice -n 10 "$bin" train --seed "$s" --out "$one" --overwrite > "$out/one-seed$s.log" 2>&1
    fi
    if [ ! -f "$two/eval/test.json" ]; then
        echo "mpi-seed-table: seed $s, 2 ranks -> $two" >&2
        nice -n 10 "${mpi[@]}" "$bin" train --seed "$s" --out "$two" --overwrite > "$out/two-seed$s.log" 2>&1
    fi
done

# clean and PGD-20 test accuracy (percent) of a run: "clean pgd20"
acc() { jq -r '[.cleanAccuracy * 100, (.attacks[] | select(.attack == "pgd20") | .accuracy * 100)] | @tsv' "$1/eval/test.json"; }

{
    for s in "${seeds[@]}"; do printf '%s\t%s\t%s\n' "$s" "$(acc "$out/one-seed$s")" "$(acc "$out/two-seed$s")"; done
} | awk -F'\t' '
    function sd(sum, sq, n) { return n > 1 ? sqrt((sq - sum * sum / n) / (n - 1)) : 0 }
    BEGIN { print "| seed | 1 process clean | 1 process PGD-20 | 2 ranks clean | 2 ranks PGD-20 |"; print "|---:|---:|---:|---:|---:|" }
    { n++; printf "| %s | %.1f | %.1f | %.1f | %.1f |\n", $1, $2, $3, $4, $5
      for (i = 2; i <= 5; i++) { sum[i] += $i; sq[i] += $i * $i } }
    END {
      printf "| mean ± sd | %.2f ± %.2f | %.2f ± %.2f | %.2f ± %.2f | %.2f ± %.2f |\n", \
        sum[2]/n, sd(sum[2], sq[2], n), sum[3]/n, sd(sum[3], sq[3], n), sum[4]/n, sd(sum[4], sq[4], n), sum[5]/n, sd(sum[5], sq[5], n)
      printf "\nmean difference (2 ranks - 1 process): clean %+.2f, PGD-20 %+.2f points (%d seeds)\n", \
        (sum[4] - sum[2]) / n, (sum[5] - sum[3]) / n, n
    }'
