#!/usr/bin/env bash
# `make demo`: the main job on the embedded toy world, end to end, offline. The steps are
# `python -m toyworld.experiment` (held-out scenes, optional embeddings, shards, U-Net, eval,
# report; see its --help); this script maps the DEMO_* knobs onto its options.
# Usage: scripts/demo.sh [OUT]   (default runs/demo; rerunning resumes every step)
# Knobs (environment; an unset one keeps the driver's default, shown by its --help):
# DEMO_LATENTS (prior or embeddings), DEMO_MIN_FRACTION (0 = the paper's filters exactly),
# DEMO_SHARDS, DEMO_SAMPLES_PER_SHARD, DEMO_STEPS, DEMO_WIDTH, DEMO_BATCH, and
# SEG_SHARED_DATA (the folder holding weizmann_horse/; default ../shared/data).
# Outputs: OUT/metrics.json, OUT/report.md and each set's eval report under OUT/eval/.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python  # the project's environment (make venv)
if [[ ! -x "$PY" ]]; then
  echo "demo: $PY not found; run 'make venv' first" >&2
  exit 2
fi

args=("${1:-runs/demo}")
knob() { [[ -n "${!1:-}" ]] && args+=("$2" "${!1}"); return 0; }
knob DEMO_LATENTS --latents
knob DEMO_MIN_FRACTION --min-fraction
knob DEMO_SHARDS --shards
knob DEMO_SAMPLES_PER_SHARD --samples-per-shard
knob DEMO_STEPS --steps
knob DEMO_WIDTH --width
knob DEMO_BATCH --batch-size
HORSES="${SEG_SHARED_DATA:-../shared/data}/weizmann_horse"
if [[ -d "$HORSES" ]]; then
  args+=(--horses "$HORSES")
else
  echo "demo: $HORSES not found; skipping the horse evaluation (set SEG_SHARED_DATA)" >&2
fi

exec "$PY" -m toyworld.experiment "${args[@]}"
