#!/usr/bin/env bash
# One epoch of configs/fashion-single.toml end to end (reading the canvases, the pipeline, the
# training steps, validation and the test scoring), `mlml train` against the same epoch in PyTorch
# with a DataLoader (benches/fashion_epoch_torch.py, with 0 and with 2 worker processes),
# interleaved so that the machine's drift falls on every side. Each side is timed as a process
# (wall seconds and peak resident memory from GNU time); ratios are taken within a round, and
# benches/host_probe.py before each side says whether the host's slow mode was on.
#
# Usage: benches/fashion_epoch_interleaved.sh MLML ROUNDS
#   MLML: a release build of the binary (cargo build --release -p mlml-cli).
# Needs /usr/bin/time and /usr/bin/python3 with torch (Debian's time, python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
mlml=$1
rounds=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "seconds peak_MiB" of a command, its output kept in $work/out.
timed() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" ||
    { cat "$work/err" >&2; exit 1; }
  awk '{ printf "%.1f s, peak %.0f MiB", $1, $2 / 1024 }' "$work/time"
}

for round in $(seq 1 "$rounds"); do
  run="$work/run-$round"
  # Whether the host lends both cores right now (benches/host_probe.py).
  /usr/bin/python3 benches/host_probe.py
  echo "round $round: mlml train: $(timed "$mlml" train --config configs/fashion-single.toml \
    --set training.epochs=1 --out "$run")"
  grep -o '"train_images_per_second": *[0-9.]*' "$run/report.json" || true
  for workers in 0 2; do
    /usr/bin/python3 benches/host_probe.py
    echo "round $round: torch, $workers workers: $(timed /usr/bin/python3 \
      benches/fashion_epoch_torch.py "$run" --workers "$workers")"
    cat "$work/out"
  done
done
