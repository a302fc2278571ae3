#!/usr/bin/env bash
# One round of the review loop on the composite Fashion set (docs/results/fashion-suggest.md):
# train the small CNN with one observed positive per row, rank the unobserved entries with
# `mlml suggest`, measure the precision of the top 500 / 1,000 / 2,000 against the full labels
# the protocol hid, accept the top ACCEPT with `mlml-data review apply`, and train again on the
# result. Usage: scripts/fashion_suggest_loop.sh OUT [SEED] [ACCEPT]
set -euo pipefail
out=${1:?usage: $0 OUT [SEED] [ACCEPT]}
seed=${2:-0}
accept=${3:-1000}
cd "$(dirname "$0")/.."
bin=${MLML_BIN:-target/release}
mkdir -p "$out"
"$bin/mlml" train --config configs/fashion-single.toml --set "training.seed=$seed" \
    --out "$out/round1"
"$bin/mlml" suggest "$out/round1" --top 2000 -o "$out/suggestions.tsv" --grid "$out/suggestions.png"
/usr/bin/python3 scripts/suggestion_precision.py "$out/suggestions.tsv" \
    datasets/fashion/train_labels.npy.gz datasets/fashion/classes.txt 500 1000 2000 \
    | tee "$out/precision.txt"
"$bin/mlml-data" review apply "$out/round1/observed-labels.npy" "$out/suggestions.tsv" \
    --accept "top:$accept" -o "$out/round2-labels.npy"
"$bin/mlml" train --config configs/fashion-single.toml --set "training.seed=$seed" \
    --set 'data.labels="observed-set"' --set "data.observed_set=\"$out/round2-labels.npy\"" \
    --out "$out/round2"
for r in round1 round2; do
    /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], 'best epoch', r['best_epoch'], 'val mAP %.2f' % r['val']['map'], 'test mAP %.2f' % r['test']['map'])" \
        "$out/$r/report.json" "$r"
done | tee "$out/rounds.txt"
