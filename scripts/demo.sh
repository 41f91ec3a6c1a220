#!/usr/bin/env bash
# The main job on the embedded defaults, end to end, offline (issue 8):
#   1. held-out world scenes with true masks (for evaluation only)
#   2. only with DEMO_LATENTS=embeddings (the paper's E-BigBiGAN, PAPER.md section 4): embed 2,000
#      unlabelled world training images with the GAN's encoder (no masks are read)
#   3. generate mask shards with the shipped toy-world GAN and its shipped direction (Ray, local);
#      latents N(0, I), or those embeddings + 0.2 * N(0, I) (alpha 0.2: the paper's value off
#      ImageNet); the paper's filters plus a lower bound on the mask size (--min-fraction 0.02:
#      near-empty masks of a one-object world are wrong; README, "The embedded toy world")
#   4. train the U-Net on them with torchrun, 2 processes
#   5. evaluate on 1,000 held-out world scenes with true masks, and on the real Weizmann horses
#   6. write a report: OUT/metrics.json (per set: max_fbeta, iou, accuracy, n_images, ...),
#      OUT/report.md and each set's eval report (curves, best/worst grid)
# Usage: scripts/demo.sh [OUT]   (default runs/demo; rerunning resumes every step)
# Knobs (environment): DEMO_LATENTS (prior, the default, or embeddings), DEMO_MIN_FRACTION
# (0.02; 0 = the paper's filters exactly), DEMO_SHARDS,
# DEMO_SAMPLES_PER_SHARD, DEMO_STEPS, DEMO_WIDTH, DEMO_BATCH,
# SEG_SHARED_DATA (folder holding weizmann_horse/; default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${1:-runs/demo}"
PY=.venv/bin/python
SHARDS="${DEMO_SHARDS:-8}"
PER_SHARD="${DEMO_SAMPLES_PER_SHARD:-500}"
STEPS="${DEMO_STEPS:-600}"
WIDTH="${DEMO_WIDTH:-0.25}"
BATCH="${DEMO_BATCH:-32}"
LATENTS="${DEMO_LATENTS:-prior}"
MIN_FRACTION="${DEMO_MIN_FRACTION:-0.02}"
DATA="${SEG_SHARED_DATA:-../shared/data}"
HORSES="$DATA/weizmann_horse"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # 2 ranks x 1 thread on 2 cores
export GLOO_SOCKET_IFNAME="${GLOO_SOCKET_IFNAME:-lo}"

if [[ "$LATENTS" != embeddings && "$LATENTS" != prior ]]; then
  echo "demo: DEMO_LATENTS must be 'prior' or 'embeddings', got '$LATENTS'" >&2
  exit 2
fi
if [[ ! -x "$PY" ]]; then
  echo "demo: $PY not found; run 'make venv' first" >&2
  exit 2
fi
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "demo: [$(( $(date +%s) - start ))s] $*"; }

stamp "1/6 held-out world scenes with true masks -> $OUT/world_test"
$PY -m toyworld.world "$OUT/world_test" --count 1000

latents=()
if [[ "$LATENTS" == embeddings ]]; then
  stamp "2/6 embedding 2,000 unlabelled world training images (encoder) -> $OUT/embed"
  if [[ ! -f "$OUT/embed/embeddings.npy" ]]; then
    # seed 0 = the world's TRAIN_SEED (the GAN's training distribution), disjoint from the test
    # scenes; the folder also gets masks/, which nothing reads: embed reads images/ only
    $PY -m toyworld.world "$OUT/embed/world_train" --count 2000 --seed 0
    $PY -m generator.embed --gan toyworld --images "$OUT/embed/world_train/images" \
      --out "$OUT/embed/embeddings.npy"
  fi
  latents=(--latents "$OUT/embed/embeddings.npy" --alpha 0.2)
else
  stamp "2/6 prior latents N(0, I): nothing to embed (DEMO_LATENTS=embeddings adapts them)"
fi

stamp "3/6 generating $SHARDS x $PER_SHARD samples with the embedded GAN -> $OUT/shards"
$PY -m generator --gan toyworld --shards "$SHARDS" --samples-per-shard "$PER_SHARD" \
  --out "$OUT/shards" --workers 2 --device cpu --min-fraction "$MIN_FRACTION" "${latents[@]}"

last=$(printf '%06d' $((SHARDS - 1)))
stamp "4/6 training the U-Net (torchrun, 2 processes, $STEPS steps)"
resume=()
[[ -f "$OUT/unet/checkpoint.pt" ]] && resume=(--resume)
if [[ ! -f "$OUT/unet/model.json" ]]; then
  .venv/bin/torchrun --standalone --nproc_per_node=2 -m trainer \
    --shards "$OUT/shards/shard-{000000..$last}.tar" --out "$OUT/unet" \
    --resolution 32 --width "$WIDTH" --batch-size "$BATCH" --steps "$STEPS" --workers 0 \
    --log-every 50 "${resume[@]}"
fi

stamp "5/6 evaluating on the held-out world scenes"
$PY -m eval saliency --model "$OUT/unet" --data "$OUT/world_test" --short-side 32 \
  --out "$OUT/eval/world_test" --name "toy world (held-out, true masks)" --no-progress
if [[ -d "$HORSES" ]]; then
  stamp "5/6 evaluating on the Weizmann horses ($HORSES)"
  $PY -m eval saliency --model "$OUT/unet" --data "$HORSES" --short-side 32 \
    --out "$OUT/eval/weizmann_horse" --name "Weizmann horse (real)" --no-progress
else
  echo "demo: $HORSES not found; skipping the horse evaluation (set SEG_SHARED_DATA)" >&2
fi

stamp "6/6 report"
$PY -m toyworld.report "$OUT"
stamp "done: report in $OUT/report.md, metrics in $OUT/metrics.json"
