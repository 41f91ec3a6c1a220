#!/usr/bin/env bash
# Train toy-world GAN variants side by side on one GPU, time-boxed, then find each one's direction
# (discover + score --pick, no human choice) and pack each run into OUT/<variant>.tgz.
#
#     bash scripts/toyworld_gpu.sh OUT            (env: TRAIN_S, VARIANTS, N_TRAIN, ...)
#
# Phase 1 of each run is stopped after TRAIN_S seconds (checkpoints are atomic), then the same
# command is rerun with --steps set to the last checkpointed step: it resumes there and fits the
# encoder. There is no learning-rate schedule, so this equals a run started with that --steps
# (up to CUDA's own nondeterminism: cudnn.benchmark, grid_sample's backward); the --steps
# recorded in toyworld.json is the one trained, and the log is trimmed to it on resume. The
# shipped weights are variant A of this script (docs/toyworld.md). It runs from the repository
# root; $PY (default python3) must hold torch, numpy, opencv, tqdm, fsspec and PIL.
set -uo pipefail
OUT=${1:?usage: toyworld_gpu.sh OUT}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
TRAIN_S=${TRAIN_S:-240}
N_TRAIN=${N_TRAIN:-60000}
ENC_STEPS=${ENC_STEPS:-3000}
DISC_STEPS=${DISC_STEPS:-2500}
DISC_S=${DISC_S:-120}
WORK=${WORK:-/tmp/toyworld_gpu}
VARIANTS=${VARIANTS:-A B C}
RENDER_WORKERS=${RENDER_WORKERS:-16}
export PYTHONUNBUFFERED=1
mkdir -p "$WORK" "$OUT"
cd "$(dirname "$0")/.."

declare -A ARGS=(
    [A]=""  # the training defaults (toyworld.train_config.GanTrainConfig): the shipped recipe
    [B]="--g-width 32 --d-width 48 --e-width 32"
    [C]="--batch 128 --lr-g 1e-4 --lr-d 2e-4 --ema-decay 0.999"
    [T]="--batch 8 --g-width 4 --d-width 4 --e-width 4"
)
for v in $VARIANTS; do
    [[ -v "ARGS[$v]" ]] || { echo "unknown variant $v (known: ${!ARGS[*]})" >&2; exit 2; }
done
common() {  # the options every run of variant $1 shares (32 px: the model's default resolution)
    echo "--out $WORK/$1 --device $DEVICE --n-train $N_TRAIN --encoder-steps $ENC_STEPS" \
        "--ckpt-every 500 --sample-every 2000 --log-every 200 ${ARGS[$1]}"
}

date -u
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, numpy, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

t0=$(date +%s)
$PY -m toyworld.train $(common ${VARIANTS%% *}) --steps 1 --encoder-steps 1 \
    --render-workers "$RENDER_WORKERS" --out "$WORK/render" >"$WORK/render.log" 2>&1 \
    || { tail -20 "$WORK/render.log"; exit 1; }
echo "rendered $N_TRAIN training images (and a 1-step smoke run) in $(($(date +%s) - t0)) s"

declare -A PID
for v in $VARIANTS; do
    mkdir -p "$WORK/$v"
    ln -sf "$WORK/render/train_images_${N_TRAIN}_32.npy" "$WORK/$v/"
    timeout "$TRAIN_S" $PY -m toyworld.train $(common "$v") --steps 10000000 \
        >"$WORK/$v/phase1.log" 2>&1 &
    PID[$v]=$!
done
for v in $VARIANTS; do
    wait "${PID[$v]}"
    rc=$?  # 124: stopped by the time box, as planned; anything else: it failed
    [ "$rc" = 124 ] || { echo "$v: phase 1 exited with $rc before the time box:"; tail -5 "$WORK/$v/phase1.log"; }
done
for v in $VARIANTS; do
    if [ ! -f "$WORK/$v/checkpoint.pt" ]; then
        echo "$v: no checkpoint after ${TRAIN_S} s (raise TRAIN_S or lower --ckpt-every); skipped"
        continue
    fi
    steps=$($PY -c "import torch; print(torch.load('$WORK/$v/checkpoint.pt', weights_only=True)['state']['step'])")
    echo "$v: phase 1 stopped at $steps checkpointed steps; $(grep -h s_per_step "$WORK/$v/train_log.jsonl" | tail -1)"
    (
        $PY -m toyworld.train $(common "$v") --steps "$steps" >"$WORK/$v/phase2.log" 2>&1 &&
        W="--gan toyworld --weights $WORK/$v/final/toyworld.pt --device $DEVICE" &&
        timeout "$DISC_S" $PY -m generator.directions discover $W --k 64 --steps "$DISC_STEPS" \
            --width 16 --batch 64 --out "$WORK/$v/dirs/dirs.pt" >"$WORK/$v/discover.log" 2>&1 &&
        $PY -m generator.directions score $W --directions "$WORK/$v/dirs/dirs.pt" \
            --out "$WORK/$v/score" --pool-size 64 --pick >"$WORK/$v/score.log" 2>&1
        echo "$v: finished with rc $?"
    ) &
done
wait
for v in $VARIANTS; do
    (cd "$WORK/$v" && { ls samples | grep -v '^step-\|^alpha-'; ls samples | grep '^step-' | tail -2
        ls samples | grep '^alpha-' | tail -1; true; } | sed 's|^|samples/|' >keep.txt &&
        tar czf "$OUT/$v.tgz" --ignore-failed-read final score dirs train_log.jsonl \
            ./*.log -T keep.txt)
    size=$(stat -c %s "$OUT/$v.tgz")
    if [ "$size" -gt 15000000 ]; then
        split -b 15000000 -d "$OUT/$v.tgz" "$OUT/$v.tgz.part" && rm "$OUT/$v.tgz"
    fi
    tail -n 3 "$WORK/$v"/*.log
done
ls -l "$OUT"
echo "total $(($(date +%s) - t0)) s"
