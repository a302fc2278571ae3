#!/usr/bin/env bash
# The models bench against PyTorch, interleaved so that the machine's drift falls on every side:
# per round PyTorch (models_torch.py), then each given build of mlml's criterion bench, then the
# small-CNN step of `mlml train` (examples/time_train_step) beside benches/small_cnn_torch.py.
# Ratios are taken within a round; benches/host_probe.py before each part says whether the
# host's slow mode (two vCPUs on one core's time) was on. A build is a directory holding the
# two binaries `models` (the criterion bench) and `time_train_step`; `--build DIR` copies this
# checkout's there.
#
# Usage: benches/models_interleaved.sh --build DIR
#        benches/models_interleaved.sh ROUNDS DIR [DIR ...]
# Needs /usr/bin/python3 with torch and torchvision (Debian's python3-torch, python3-torchvision).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--build" ]]; then
  dir=$2
  mkdir -p "$dir"
  bench=$(cargo bench -p mlml-models --bench models --no-run --message-format json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep '/models-' | tail -1)
  cargo build --release -p mlml-train --example time_train_step
  cp "$bench" "$dir/models"
  cp "${CARGO_TARGET_DIR:-target}/release/examples/time_train_step" "$dir/time_train_step"
  echo "built into $dir: models ($bench), time_train_step"
  exit 0
fi

rounds=$1
shift
for round in $(seq 1 "$rounds"); do
  echo "== round $round: torch"
  /usr/bin/python3 benches/host_probe.py
  /usr/bin/python3 crates/mlml-models/benches/models_torch.py
  for dir in "$@"; do
    echo "== round $round: $dir"
    /usr/bin/python3 benches/host_probe.py
    "$dir/models" --bench --output-format bencher 2>/dev/null | grep '^test'
  done
  echo "== round $round: small-CNN step, torch then each build"
  /usr/bin/python3 benches/host_probe.py
  /usr/bin/python3 benches/small_cnn_torch.py --steps 5
  for dir in "$@"; do
    echo -n "$dir: "
    "$dir/time_train_step" 5
  done
done
