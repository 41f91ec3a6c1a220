#!/usr/bin/env bash
# One GPU check: the BigBiGAN port's masks/s, the generator end to end with random weights, their
# ratio, and the trainer's img/s and data-wait with the default workers; prints ONE JSON object
# on stdout (progress on stderr) in under 8 minutes. Needs a CUDA machine with the project
# installed (pip install -c constraints.txt -e .); run from anywhere:
#
#     bash scripts/gpu_check.sh > gpu_check.json
#     GPU_CHECK_SMOKE=1 bash scripts/gpu_check.sh     # CPU smoke run (tiny sizes, narrow port)
#
# $PY (default: python) runs it. Phases, fields and environment: benchmarks/gpu_check.py and
# docs/benchmarks.md#gpu-check.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PY:-python}" benchmarks/gpu_check.py
