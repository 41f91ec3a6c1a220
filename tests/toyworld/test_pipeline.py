"""End to end on the shipped GAN: generate (Ray) -> train (torchrun, 2 processes) -> evaluate on
held-out world scenes against their TRUE masks, compared with a global-threshold baseline."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from toyworld.world import TEST_SEED, render_scene, write_folder

ROOT = Path(__file__).resolve().parents[2]
N_TEST = 200


def _otsu_minority_iou(n: int) -> float:
    ious = []
    for i in range(n):
        img, mask = render_scene(TEST_SEED, i)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        t, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        pred = gray > t
        pred = pred if pred.mean() < 0.5 else ~pred
        ious.append((pred & mask).sum() / max((pred | mask).sum(), 1))
    return float(np.mean(ious))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run the three stages once; -> (metrics of the U-Net, Otsu IoU on the same scenes)."""
    tmp = tmp_path_factory.mktemp("pipeline")
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    py = sys.executable
    shards = tmp / "shards"
    subprocess.run(
        [py, "-m", "generator", "--gan", "toyworld", "--shards", "8", "--samples-per-shard", "500",
         "--out", str(shards), "--workers", "2", "--device", "cpu",
         "--min-fraction", "0.02"],  # the demo's setting (scripts/demo.sh)
        check=True, cwd=ROOT, env=env,
    )  # fmt: skip
    torchrun = str(Path(py).with_name("torchrun"))
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "trainer",
         "--shards", f"{shards}/shard-{{000000..000007}}.tar", "--out", str(tmp / "unet"),
         "--resolution", "32", "--width", "0.25", "--batch-size", "32", "--steps", "600",
         "--workers", "0", "--log-every", "100"],
        check=True, cwd=ROOT, env=env,
    )  # fmt: skip
    from eval.datasets import FolderPairs
    from eval.inference import Predictor
    from eval.metrics import SaliencyMetrics

    test = write_folder(tmp / "world_test", N_TEST)
    predictor = Predictor(str(tmp / "unet" / "model.pt2"), short_side=32)
    metrics = SaliencyMetrics()
    for sample in FolderPairs(test):
        metrics.update(predictor.predict(sample.image), sample.mask)
    result = metrics.compute()
    baseline = _otsu_minority_iou(N_TEST)
    print(f"pipeline IoU {result['iou']:.3f}, Otsu minority-side IoU {baseline:.3f}")
    return result, baseline


@pytest.mark.slow
@pytest.mark.integration
def test_shipped_gan_runs_through_generate_train_eval(pipeline):
    result, baseline = pipeline
    assert result["n_images"] == N_TEST
    for key in ("max_fbeta", "iou", "accuracy"):
        assert 0.0 <= result[key] <= 1.0
    assert 0.45 < baseline < 0.62  # the baseline the floor below is measured against


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_beats_the_global_threshold_baseline(pipeline):
    """Same data volume as benchmarks/pipeline_world.py part (a) (8 x 500 samples, 600 steps):
    measured 0.911 here against Otsu's 0.510 on 200 scenes (1,000 samples gave 0.52 with an
    earlier GAN: too few to generalise)."""
    result, baseline = pipeline
    assert result["iou"] >= baseline + 0.1
