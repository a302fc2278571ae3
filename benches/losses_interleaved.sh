#!/usr/bin/env bash
# PyTorch's loss formulations and mlml's loss bench, interleaved (torch, mlml, torch, ...) so
# that the machine's drift falls on both sides; ratios are taken over adjacent pairs.
# Usage: benches/losses_interleaved.sh [ROUNDS]
set -euo pipefail
rounds=${1:-2}
cargo bench -p mlml-losses --bench losses --no-run
for round in $(seq 1 "$rounds"); do
  echo "== torch $round"
  /usr/bin/python3 crates/mlml-losses/benches/losses_torch.py
  echo "== mlml $round"
  cargo bench -p mlml-losses --bench losses -- --output-format bencher 2>/dev/null | grep '^test'
done
echo "== torch $((rounds + 1))"
/usr/bin/python3 crates/mlml-losses/benches/losses_torch.py
