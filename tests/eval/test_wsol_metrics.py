"""WSOL metrics against wsolevaluation's own test vectors, a literal per-threshold
transcription of the reference (identical results) and hand-computed PxAP cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.metrics import PxAP, WsolBoxMetrics, box_iou, resize_bbox
from eval.metrics.wsol import (
    MaxBoxAcc,
    boxes_at_thresholds,
    cam_thresholds,
    normalize_scoremap,
    prepare_scoremap,
)
from eval.metrics.wsol_reference import ReferenceBoxEvaluator, reference_boxes

UNIMODAL = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.4, 0.4, 0.4, 0.6],
        [0.0, 0.4, 1.0, 0.8, 0.6],
        [0.0, 0.4, 0.4, 0.4, 0.6],
    ]
)
MULTIMODAL = np.array(
    [
        [0.4, 0.0, 0.2, 0.2, 0.2],
        [0.4, 0.4, 0.0, 0.4, 0.0],
        [0.0, 0.0, 0.0, 0.4, 0.0],
        [1.0, 0.6, 0.8, 0.2, 0.2],
    ]
)


def boxes_per_tau(scoremap, taus, multi=False):
    sets, index = boxes_at_thresholds(scoremap, taus, multi)
    return [sets[i].tolist() for i in index]


def test_reference_box_iou_vectors():
    assert box_iou([[1, 2, 5, 6]], [[3, 1, 4, 5]])[0, 0] == pytest.approx(8 / 27, abs=1e-15)
    np.testing.assert_array_equal(
        box_iou([[1, 1, 3, 3], [4, 4, 5, 5]], [[1, 1, 3, 3], [4, 4, 5, 5]]), np.eye(2)
    )
    # degenerate [0,0,0,0] boxes are one pixel each: IoU 1 (reference convention)
    np.testing.assert_array_equal(box_iou(np.zeros((3, 4)), np.zeros((5, 4))), np.ones((3, 5)))
    # non-positive union -> 0
    assert box_iou([[5, 5, 3, 3]], [[5, 5, 3, 3]])[0, 0] == 0.0


def test_reference_resize_bbox_vectors():
    assert resize_bbox((1, 2, 4, 3), (10, 20), (35, 10)) == (3, 1, 14, 1)
    assert resize_bbox((1, 2, 1, 2), (3, 3), (3, 3)) == (1, 2, 1, 2)


def test_reference_scoremap_boxes():
    taus = np.arange(0, 1, 0.2)
    assert boxes_per_tau(UNIMODAL, taus) == [
        [[1, 1, 4, 3]],
        [[1, 1, 4, 3]],
        [[2, 1, 4, 3]],
        [[2, 2, 4, 3]],
        [[2, 2, 3, 3]],
    ]
    assert boxes_per_tau(MULTIMODAL, taus) == [
        [[0, 0, 4, 3]],
        [[0, 0, 2, 2]],
        [[0, 3, 3, 3]],
        [[2, 3, 3, 3]],
        [[0, 3, 1, 3]],
    ]
    assert boxes_per_tau(np.zeros((3, 3)), taus) == [[[0, 0, 0, 0]]] * 5


def test_all_contours_mode_keeps_every_component():
    # two separate blobs at tau = 0.5 -> two boxes
    m = np.zeros((6, 8))
    m[1:3, 1:3] = 1.0
    m[4:6, 5:8] = 0.9
    (both,) = boxes_per_tau(m, np.array([0.5]), multi=True)
    assert sorted(both) == [[1, 1, 3, 3], [5, 4, 7, 5]]
    assert boxes_per_tau(m, np.array([0.5]), multi=False) == [[[5, 4, 7, 5]]]  # larger area


def test_distinct_level_boxes_equal_reference_per_threshold():
    rng = np.random.default_rng(0)
    taus = cam_thresholds(0.001)
    for multi in (False, True):
        for _ in range(4):
            raw = cv2_blur(rng.random((40, 50)))
            s = normalize_scoremap(raw)
            ref, _ = reference_boxes(s, taus, multi)
            ours = boxes_per_tau(s, taus, multi)
            assert ours == [b.tolist() for b in ref]


def cv2_blur(x):
    import cv2

    return cv2.GaussianBlur(x, (0, 0), 3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), interval=st.sampled_from([0.01, 0.001, 0.05]))
def test_maxboxacc_identical_to_reference_evaluator(seed, interval):
    rng = np.random.default_rng(seed)
    taus = cam_thresholds(interval)
    ours = WsolBoxMetrics(interval=interval)
    ref1 = ReferenceBoxEvaluator(taus, (50,), multi_contour=False)
    ref2 = ReferenceBoxEvaluator(taus, (30, 50, 70), multi_contour=True)
    for _ in range(3):
        s = normalize_scoremap(cv2_blur(rng.random((30, 36))))
        if rng.random() < 0.2:
            s = np.zeros_like(s)
        gt = []
        for _ in range(rng.integers(1, 3)):
            x0, y0 = rng.integers(0, 30), rng.integers(0, 25)
            gt.append([x0, y0, x0 + rng.integers(0, 6), y0 + rng.integers(0, 5)])
        ours.update(s, gt)
        ref1.accumulate(s, gt)
        ref2.accumulate(s, gt)
    r = ours.compute()
    assert r["maxboxacc_v1"] == ref1.compute()[0]
    assert r["maxboxacc_v2"] == pytest.approx(np.mean(ref2.compute()), abs=1e-12)
    assert [r["maxboxacc_v2_per_delta"][k] for k in ("0.3", "0.5", "0.7")] == ref2.compute()


def test_maxboxacc_hand_case():
    # one image, box exactly found at low taus: 100; a second image never found: 50.
    s = np.zeros((10, 10))
    s[2:5, 3:7] = 1.0
    acc = MaxBoxAcc(multi_contour=False, interval=0.5, deltas=(0.5,))
    acc.update(s, [[3, 2, 7, 5]])  # x+w, y+h convention: (3, 2, 3+4, 2+3)
    assert acc.compute()["maxboxacc"] == 100.0
    acc.update(s, [[0, 8, 1, 9]])
    assert acc.compute()["maxboxacc"] == 50.0
    with pytest.raises(ValueError, match="no images"):
        MaxBoxAcc(multi_contour=True).compute()


@pytest.mark.parametrize(
    ("bad", "match"),
    [(np.full((3, 3), np.nan), "NaN"), (np.full((3, 3), 1.5), r"\[0, 1\]"), (np.zeros(3), "2-D")],
)
def test_bad_scoremaps_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        WsolBoxMetrics().update(bad, [[0, 0, 1, 1]])


def test_normalize_and_prepare_scoremap():
    assert (normalize_scoremap(np.full((3, 3), 0.7)) == 0).all()
    assert (normalize_scoremap(np.array([[np.nan, 1.0]])) == 0).all()
    np.testing.assert_allclose(normalize_scoremap(np.array([[2.0, 3.0, 4.0]])), [[0, 0.5, 1]])
    s = prepare_scoremap(np.random.default_rng(0).random((50, 70)).astype(np.float32))
    assert s.shape == (224, 224) and s.min() == 0.0 and s.max() == 1.0


# --- PxAP ------------------------------------------------------------------------------------


def test_pxap_perfect_mask_is_100():
    rng = np.random.default_rng(0)
    p = PxAP(interval=0.01)
    for _ in range(3):
        gt = rng.random((20, 20)) < 0.3
        ignore = np.zeros_like(gt)
        ignore[:5, :5] = True
        s = gt.astype(np.float64)
        s[ignore & ~gt] = 1.0  # a wrong score in the ignore region must not matter
        p.update(s, gt, ignore)
    assert p.compute()["pxap"] == 100.0


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_pxap_constant_map(value):
    gt = np.zeros((10, 10), bool)
    gt[:3, :4] = True  # 12 foreground
    ignore = np.zeros_like(gt)
    ignore[5:, 5:] = True  # 25 ignored background
    p = PxAP(interval=0.01)
    p.update(np.full((10, 10), value), gt, ignore)
    assert p.compute()["pxap"] == pytest.approx(100.0 * 12 / (12 + 63), abs=1e-12)


def test_pxap_hand_case():
    # fg scores 0.9, 0.4 ; bg scores 0.6, 0.1. Ranking: .9 (TP) .6 (FP) .4 (TP) .1 (FP)
    # AP = sum P(k) dR(k) = 1 * 1/2 + 2/3 * 1/2 = 5/6
    s = np.array([[0.9, 0.4, 0.6, 0.1]])
    gt = np.array([[True, True, False, False]])
    p = PxAP(interval=0.001)
    p.update(s, gt)
    assert p.compute()["pxap"] == pytest.approx(100 * 5 / 6, abs=1e-9)


def test_pxap_without_foreground_fails():
    p = PxAP()
    p.update(np.zeros((2, 2)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="no foreground"):
        p.compute()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), perm_seed=st.integers(0, 1000))
def test_wsol_metrics_invariant_to_image_order(seed, perm_seed):
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(4):
        s = normalize_scoremap(cv2_blur(rng.random((24, 30))))
        x0, y0 = rng.integers(0, 20, 2)
        gt = rng.random(s.shape) < 0.3
        items.append((s, [[x0, y0, x0 + 5, y0 + 4]], gt))
    order = np.random.default_rng(perm_seed).permutation(len(items))
    results = []
    for seq in (items, [items[i] for i in order]):
        box, px = WsolBoxMetrics(interval=0.01), PxAP(interval=0.01)
        for s, b, gt in seq:
            box.update(s, b)
            px.update(s, gt)
        results.append((box.compute(), px.compute()))
    assert results[0] == results[1]
