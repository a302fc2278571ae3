#!/usr/bin/env bash
# Data-parallel scaling on this machine: `mlml train` on one device and on `--devices cpu,cpu`
# (two peers sharing the CPU), interleaved rounds, the report's throughput, wall time and test
# mAP. Usage: scripts/bench_devices.sh [MLML] [ROUNDS]  (MLML defaults to the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."
mlml="${1:-${CARGO_TARGET_DIR:-target}/release/mlml}"
rounds="${2:-2}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

row() { # name config devices report
  python3 - "$@" <<'EOF'
import json, sys
name, config, devices, path = sys.argv[1:5]
r = json.load(open(path))
speed = r.get("train_images_per_second") or r.get("train_rows_per_second")
print(f"| {name} | {devices} | {r['devices']} | {speed:.0f} | {r['seconds']:.1f} | {r['test']['map']:.2f} |")
EOF
}

echo "| setting | --devices | devices in report | train rows or images/s | seconds | test mAP |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  for setting in "yeast configs/yeast-single.toml" "fashion-1-epoch configs/fashion-single.toml"; do
    set -- $setting
    name="$1"; config="$2"
    extra=()
    [ "$name" = fashion-1-epoch ] && extra=(--set training.epochs=1)
    for devices in cpu cpu,cpu; do
      dir="$out/$name-$devices-$round"
      RUST_LOG=warn "$mlml" train --config "$config" --out "$dir" --devices "$devices" "${extra[@]}" >/dev/null
      row "$name (round $round)" "$config" "$devices" "$dir/report.json"
    done
  done
done
