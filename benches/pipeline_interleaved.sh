#!/usr/bin/env bash
# torchvision and mlml's pipeline bench, interleaved (tv, mlml, tv, ...) on the same JPEGs so
# that the machine's drift falls on both sides; ratios are taken over adjacent pairs.
# Usage: benches/pipeline_interleaved.sh JPEG_DIR [ROUNDS]  (randaugment on PYTHONPATH for asl-224)
set -euo pipefail
images=${1:?JPEG folder}
rounds=${2:-3}
cargo bench -p mlml-data --bench pipeline --no-run
for round in $(seq 1 "$rounds"); do
  echo "== torchvision $round"
  /usr/bin/python3 benches/pipeline_torchvision.py "$images"
  echo "== mlml $round"
  MLML_BENCH_IMAGES=$images cargo bench -p mlml-data --bench pipeline -- 'asl-224|spml-448$|eval-224' 2>&1 \
    | grep -E '^pipeline/|thrpt'
done
echo "== torchvision $((rounds + 1))"
/usr/bin/python3 benches/pipeline_torchvision.py "$images"
