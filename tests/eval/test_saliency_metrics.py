"""SaliencyMetrics against hand-computed cases, PySODMetrics (independent oracle) and
order/batching invariance."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.metrics import SaliencyConventions, SaliencyMetrics


def f_beta(p, r, b2=0.3):
    return 0.0 if p == r == 0 else (1 + b2) * p * r / (b2 * p + r)


# --- hand-computed cases ------------------------------------------------------------------


def test_tiny_case_by_hand():
    pred = np.array([[0.0, 0.5], [1.0, 0.2]])
    gt = np.array([[False, True], [True, False]])
    m = SaliencyMetrics()
    m.update(pred, gt)
    r = m.compute()
    # p > k/255: k=0..50 -> {0.5, 1, 0.2} (TP 2 of 3); 0.2 = 51/255 is NOT > 51/255, so
    # k=51..127 -> {0.5, 1} (perfect); 127.5 > k fails from k=128 -> {1} (P 1, R 1/2).
    low, mid, high = f_beta(2 / 3, 1.0), 1.0, f_beta(1.0, 0.5)
    expected = np.array([low] * 51 + [mid] * 77 + [high] * 127)
    assert len(r["f_curve"]) == 255
    np.testing.assert_allclose(r["f_curve"], expected, rtol=0, atol=1e-15)
    assert r["max_fbeta"] == 1.0
    assert r["best_threshold"] == 51 / 255
    assert r["mean_fbeta"] == pytest.approx(expected.mean(), abs=1e-15)
    assert r["iou"] == 1.0 and r["accuracy"] == 1.0  # p >= 0.5 is exactly gt
    assert r["mae"] == pytest.approx((0.5 + 0.2) / 4, abs=1e-15)
    assert r["n_images"] == 1


def test_strict_threshold_on_float32_grid_values():
    # A float32 q/255 map must behave exactly like its uint8 source: q/255 > q/255 is False.
    q = np.arange(256, dtype=np.uint8).reshape(16, 16)
    gt = q >= 100
    a, b = SaliencyMetrics(), SaliencyMetrics()
    a.update(q, gt)
    b.update((q / np.float32(255)).astype(np.float32), gt)
    assert a.compute()["f_curve"] == b.compute()["f_curve"]
    # At k = 100 the pixel with value 100/255 is not foreground (strict >): P = 155/155 = 1,
    # R = 155/156.
    assert a.compute()["f_curve"][100] == pytest.approx(f_beta(1.0, 155 / 156), abs=1e-15)
    c = SaliencyMetrics(threshold_op=">=")
    c.update(q, gt)
    assert c.compute()["f_curve"][100] == 1.0  # >= includes it: perfect


def test_empty_prediction_paper_vs_pysod_precision():
    pred = np.zeros((3, 3))
    gt_empty = np.zeros((3, 3), bool)
    gt_some = np.eye(3, dtype=bool)
    # empty pred, empty gt: P = 1 and R = 1 by the paper's rules -> F = 1 at every threshold
    m = SaliencyMetrics()
    m.update(pred, gt_empty)
    r = m.compute()
    assert r["max_fbeta"] == 1.0 and r["mean_fbeta"] == 1.0
    assert r["iou"] == 1.0 and r["accuracy"] == 1.0 and r["mae"] == 0.0
    # same with PySOD's empty rules (P = 0, R = 0) -> F = 0
    m = SaliencyMetrics(empty_pred_precision=0.0, empty_gt_recall=0.0)
    m.update(pred, gt_empty)
    assert m.compute()["max_fbeta"] == 0.0
    # empty pred, non-empty gt: P = 1, R = 0 -> F = 0; IoU 0; accuracy 6/9
    m = SaliencyMetrics()
    m.update(pred, gt_some)
    r = m.compute()
    assert r["max_fbeta"] == 0.0 and r["iou"] == 0.0
    assert r["accuracy"] == pytest.approx(6 / 9, abs=1e-15)
    assert r["mae"] == pytest.approx(3 / 9, abs=1e-15)


def test_empty_gt_with_prediction():
    pred = np.full((2, 2), 0.9)
    gt = np.zeros((2, 2), bool)
    m = SaliencyMetrics()
    m.update(pred, gt)
    r = m.compute()
    # P = 0/4 = 0, R = 1 (empty gt) -> F = 0 wherever something is predicted (k < 229.5)
    assert r["f_curve"][0] == 0.0 and r["f_curve"][229] == 0.0
    # k = 230..254: nothing predicted, P = 1 and R = 1 -> F = 1
    assert r["f_curve"][230] == 1.0 and r["max_fbeta"] == 1.0
    assert r["iou"] == 0.0 and r["accuracy"] == 0.0


def test_dataset_max_vs_per_image_max():
    # image A is perfect only at low thresholds, image B only at high ones.
    a_pred, a_gt = np.array([[0.1, 0.0]]), np.array([[True, False]])
    b_pred, b_gt = np.array([[0.9, 0.8]]), np.array([[True, False]])
    ds, per = SaliencyMetrics(), SaliencyMetrics(max_over="image")
    for m in (ds, per):
        m.update(a_pred, a_gt)
        m.update(b_pred, b_gt)
    # A: k < 25.5 -> perfect (F 1); else empty pred P=1,R=0 -> 0.
    # B: k < 204 -> both predicted: P 1/2, R 1; k = 204..229 -> perfect; k >= 230 -> 0.
    fa = np.array([1.0] * 26 + [0.0] * 229)
    fb = np.array([f_beta(0.5, 1.0)] * 204 + [1.0] * 26 + [0.0] * 25)
    assert ds.compute()["max_fbeta"] == pytest.approx(((fa + fb) / 2).max(), abs=1e-15)
    assert per.compute()["max_fbeta"] == 1.0
    assert per.compute()["max_fbeta"] > ds.compute()["max_fbeta"]


def test_iou_and_accuracy_are_per_image_means():
    m = SaliencyMetrics()
    m.update(np.array([[0.6, 0.6, 0.1, 0.1]]), np.array([[1, 0, 0, 0]], np.uint8) * 255)
    m.update(np.full((1, 1), 0.7), np.full((1, 1), 255, np.uint8))
    r = m.compute()
    assert r["iou"] == pytest.approx((1 / 2 + 1) / 2, abs=1e-15)  # pooled would be 2/3
    assert r["accuracy"] == pytest.approx((3 / 4 + 1) / 2, abs=1e-15)


def test_gt_rules():
    gt = np.array([[127, 128, 129, 255]], np.uint8)
    pred = np.array([[0.0, 1.0, 1.0, 1.0]])
    m = SaliencyMetrics()
    m.update(pred, gt)
    assert m.compute()["iou"] == 1.0  # >= 128: 128, 129, 255 are foreground
    m = SaliencyMetrics(gt_rule=">128")
    m.update(pred, gt)
    assert m.compute()["iou"] == pytest.approx(2 / 3, abs=1e-15)


@pytest.mark.parametrize(
    ("pred", "gt", "err", "match"),
    [
        (np.array([[np.nan, 0.2]]), np.zeros((1, 2), bool), ValueError, "NaN"),
        (np.array([[1.2, 0.2]]), np.zeros((1, 2), bool), ValueError, r"\[0, 1\]"),
        (np.array([[-0.1, 0.2]]), np.zeros((1, 2), bool), ValueError, r"\[0, 1\]"),
        (np.zeros((2, 2)), np.zeros((2, 3), bool), ValueError, "shape"),
        (np.zeros((2, 2), bool), np.zeros((2, 2), bool), TypeError, "float"),
        (np.zeros((2, 2)), np.zeros((2, 2), np.float32), TypeError, "ground truth"),
        (np.zeros(4), np.zeros(4, bool), ValueError, r"\[H, W\]"),
        (np.zeros((2, 2)), np.eye(2, dtype=np.uint8), ValueError, r"\{0, 1\}"),
    ],
)
def test_bad_inputs_are_rejected(pred, gt, err, match):
    with pytest.raises(err, match=match):
        SaliencyMetrics().update(pred, gt)


def test_compute_without_images_fails_and_bad_convention():
    with pytest.raises(ValueError, match="no images"):
        SaliencyMetrics().compute()
    with pytest.raises(ValueError, match="threshold_op"):
        SaliencyConventions(threshold_op="=>")
    with pytest.raises(ValueError, match="n_thresholds"):
        SaliencyConventions(n_thresholds=100)


# --- PySODMetrics as oracle ------------------------------------------------------------------


def pysod_run(preds, gts):
    import py_sod_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "use FmeasureV2 instead"
        fm = py_sod_metrics.Fmeasure(beta=0.3)  # its beta is beta^2
    mae = py_sod_metrics.MAE()
    for p, g in zip(preds, gts, strict=True):
        fm.step(pred=p, gt=g)
        mae.step(pred=p, gt=g)
    return fm, fm.get_results(), mae.get_results()["mae"]


def random_maps(rng, n, shape=(37, 53)):
    preds, gts = [], []
    for _ in range(n):
        x = rng.random(shape) ** rng.uniform(0.3, 3)
        preds.append((x * 255).astype(np.uint8))
        gts.append(np.where(rng.random(shape) < rng.uniform(0.05, 0.6), 255, 0).astype(np.uint8))
    return preds, gts


def test_pysod_preset_matches_pysodmetrics_per_image_on_random_maps():
    rng = np.random.default_rng(1)
    preds, gts = random_maps(rng, 12)
    preds.append(np.full((10, 10), 77, np.uint8))  # constant map: no normalisation
    gts.append(np.zeros((10, 10), np.uint8))  # and an empty ground truth
    fm, ref, ref_mae = pysod_run(preds, gts)
    m = SaliencyMetrics(SaliencyConventions.pysod())
    m.update(np.stack(preds[:12]), np.stack(gts[:12]))
    m.update(preds[12], gts[12])
    _, _, f = m._curves()
    # PySOD stores curves for t = 255..0; ours ascend. Per image they are identical.
    np.testing.assert_array_equal(f, np.array(fm.changeable_fms)[:, ::-1])
    r = m.compute()
    assert r["max_fbeta"] == pytest.approx(ref["fm"]["curve"].max(), rel=1e-13)
    assert r["mean_fbeta"] == pytest.approx(ref["fm"]["curve"].mean(), rel=1e-13)
    assert r["mae"] == pytest.approx(ref_mae, rel=1e-13)
    np.testing.assert_allclose(r["precision_curve"], ref["pr"]["p"][::-1], rtol=1e-13)
    np.testing.assert_allclose(r["recall_curve"], ref["pr"]["r"][::-1], rtol=1e-13)


def _relation_holds(preds, gts):
    """docs/metrics.md: for 8-bit maps with min 0 and max 255 and non-empty gt, the paper's maxFβ
    equals PySOD's dynamic-F maximum restricted to t = 1..255 (and the curves coincide)."""
    fm, _, _ = pysod_run(preds, gts)
    ref_curve = np.array(fm.changeable_fms).mean(axis=0)[::-1]  # t = 0..255 ascending
    m = SaliencyMetrics()  # the paper's protocol
    for p, g in zip(preds, gts, strict=True):
        m.update(p, g)
    r = m.compute()
    np.testing.assert_allclose(r["f_curve"], ref_curve[1:], rtol=1e-13, atol=0)
    assert r["max_fbeta"] == pytest.approx(ref_curve[1:].max(), rel=1e-13)


def test_paper_protocol_relation_to_pysod_on_random_maps():
    rng = np.random.default_rng(2)
    preds, gts = random_maps(rng, 10)
    for p, g in zip(preds, gts, strict=True):
        p.flat[0], p.flat[1] = 0, 255
        g.flat[0] = 255
    _relation_holds(preds, gts)


def test_paper_protocol_relation_to_pysod_on_real_maps(shared_data):
    """Real horse masks with a real (blurred, noisy) prediction made from the image."""
    import cv2

    from eval.datasets import FolderPairs

    ds = FolderPairs(shared_data / "weizmann_horse")
    preds, gts = [], []
    for i in range(0, 40, 5):
        s = ds[i]
        gray = cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        soft = cv2.GaussianBlur(s.mask.astype(np.float64), (0, 0), 6) * 0.7 + gray / 255 * 0.3
        soft = (soft - soft.min()) / (soft.max() - soft.min())
        preds.append((soft * 255).astype(np.uint8))
        gts.append(s.mask.astype(np.uint8) * 255)
    assert all(p.min() == 0 and p.max() == 255 for p in preds)
    _relation_holds(preds, gts)


# --- invariance ---------------------------------------------------------------------------

maps = st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.lists(
        st.tuples(st.integers(0, 2**31 - 1), st.sampled_from([(4, 5), (7, 3), (2, 2)])),
        min_size=n,
        max_size=n,
    )
)


def _make(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.random(shape).astype(np.float32), rng.random(shape) < 0.4


@settings(max_examples=30, deadline=None)
@given(specs=maps, perm_seed=st.integers(0, 1000), split=st.integers(0, 6))
def test_invariant_to_order_and_batch_splitting(specs, perm_seed, split):
    items = [_make(seed, shape) for seed, shape in specs]
    for conv in (SaliencyConventions(), SaliencyConventions.pysod()):
        a = SaliencyMetrics(conv)
        for p, g in items:
            a.update(p, g)
        order = np.random.default_rng(perm_seed).permutation(len(items))
        shuffled = [items[i] for i in order]
        b = SaliencyMetrics(conv)
        cut = min(split, len(shuffled))
        head, tail = shuffled[:cut], shuffled[cut:]
        # batch the head where shapes agree, one by one otherwise
        if head and all(p.shape == head[0][0].shape for p, _ in head):
            b.update(np.stack([p for p, _ in head]), np.stack([g for _, g in head]))
        else:
            for p, g in head:
                b.update(p, g)
        for p, g in tail:
            b.update(p, g)
        assert a.compute() == b.compute()  # exactly, thanks to fsum means


@pytest.mark.parametrize("conv", [SaliencyConventions(), SaliencyConventions.pysod()])
def test_uint8_histogram_path_equals_pixel_path(conv):
    """uint8 maps are scored from one (value, gt) histogram; float64 q/255 maps pixel by pixel.
    Both must agree: counts exactly, MAE up to float summation order."""
    rng = np.random.default_rng(5)
    a, b = SaliencyMetrics(conv), SaliencyMetrics(conv)
    for shape in [(30, 40), (17, 9), (5, 5)]:
        q = (rng.random(shape) ** 2 * 255).astype(np.uint8)
        g = rng.random(shape) < 0.3
        a.update(q, g)
        b.update(q / 255.0, g)
    q = np.full((4, 4), 128, np.uint8)  # constant map, empty gt
    a.update(q, np.zeros((4, 4), bool))
    b.update(q / 255.0, np.zeros((4, 4), bool))
    ra, rb = a.compute(), b.compute()
    for key in ("f_curve", "precision_curve", "recall_curve", "iou", "accuracy", "max_fbeta"):
        assert ra[key] == rb[key], key
    assert ra["mae"] == pytest.approx(rb["mae"], rel=1e-14)


def test_pysod_fmeasurev2_binary_iou_and_accuracy():
    """IoU / accuracy with PySOD conventions equal FmeasureV2's sample-based binary results."""
    import py_sod_metrics as ps

    rng = np.random.default_rng(7)
    preds, gts = random_maps(rng, 8)
    preds.append(np.array([[0, 254], [127, 127]], np.uint8))  # normalises 127 to exactly 0.5
    gts.append(np.array([[0, 255], [255, 0]], np.uint8))
    ref = ps.FmeasureV2(
        {
            "iou": ps.IOUHandler(with_dynamic=False, with_adaptive=False, with_binary=True),
            "oa": ps.OverallAccuracyHandler(
                with_dynamic=False, with_adaptive=False, with_binary=True
            ),
            "fm": ps.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
        }
    )
    m = SaliencyMetrics(SaliencyConventions.pysod())
    for p, g in zip(preds, gts, strict=True):
        ref.step(p, g)
        m.update(p, g)
    r, res = m.compute(), ref.get_results()
    assert r["iou"] == pytest.approx(res["iou"]["binary"], rel=1e-13)
    assert r["accuracy"] == pytest.approx(res["oa"]["binary"], rel=1e-13)
    assert r["max_fbeta"] == pytest.approx(res["fm"]["dynamic"].max(), rel=1e-13)
    np.testing.assert_allclose(r["f_curve"], res["fm"]["dynamic"][::-1], rtol=1e-13)
