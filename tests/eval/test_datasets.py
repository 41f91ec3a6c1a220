"""Dataset loaders: the real horse/DAVIS folders, every error path, the named layouts on tiny
fake folders with the real naming schemes, and the real WSOL metadata."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from eval.datasets import (
    DatasetError,
    FolderPairs,
    WsolDataset,
    load_layout,
    load_wsol_metadata,
)
from eval.datasets.named import flowers_trimap_foreground


def write_img(path: Path, h=6, w=8, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8) if value is None else value
    assert cv2.imwrite(str(path), img)


def write_mask(path: Path, mask: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)


def binary_mask(h=6, w=8):
    m = np.zeros((h, w), np.uint8)
    m[1:4, 2:6] = 255
    return m


def make_pairs(root: Path, names, h=6, w=8):
    for n in names:
        write_img(root / "images" / f"{n}.jpg", h, w)
        write_mask(root / "masks" / f"{n}.png", binary_mask(h, w))


# --- real data -------------------------------------------------------------------------------


def test_real_horses_and_davis_load(shared_data):
    horses = FolderPairs(shared_data / "weizmann_horse")
    assert len(horses) == 328 and horses.names[0] == "horse001"
    s = horses[0]
    assert s.image.dtype == np.uint8 and s.image.shape == (590, 800, 3)
    assert s.mask.dtype == bool and s.mask.shape == (590, 800) and 0 < s.mask.mean() < 1
    davis = FolderPairs(shared_data / "davis2016_val")
    assert len(davis) == 277 and davis.names[0] == "blackswan/00000"
    s = davis[len(davis) - 1]
    assert s.image.shape == (480, 854, 3) and s.mask.shape == (480, 854)


# --- generic layout errors ---------------------------------------------------------------------


def test_nested_pairs_and_different_extensions(tmp_path):
    make_pairs(tmp_path, ["a/x", "a/y", "b/x"])
    ds = FolderPairs(tmp_path)
    assert ds.names == ["a/x", "a/y", "b/x"]
    samples = list(ds)
    assert [s.name for s in samples] == ds.names
    assert samples[0].mask.sum() == 12 and samples[0].image.shape == (6, 8, 3)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        FolderPairs(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        FolderPairs(tmp_path)


def test_unmatched_files_error_or_reported_skip(tmp_path):
    make_pairs(tmp_path, ["a", "b"])
    write_img(tmp_path / "images" / "c.jpg")
    write_mask(tmp_path / "masks" / "d.png", binary_mask())
    with pytest.raises(DatasetError, match=r"c\.jpg: no mask.*1 more"):
        FolderPairs(tmp_path)
    ds = FolderPairs(tmp_path, skip_bad=True)
    assert ds.names == ["a", "b"]
    assert sorted(n for n, _ in ds.skipped) == ["c", "d"]


def test_per_file_problems_name_the_file(tmp_path):
    make_pairs(tmp_path, ["good", "size", "grey", "broken"])
    write_mask(tmp_path / "masks" / "size.png", binary_mask(7, 8))
    grey = binary_mask()
    grey[0, 0] = 100
    write_mask(tmp_path / "masks" / "grey.png", grey)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    ds = FolderPairs(tmp_path)
    with pytest.raises(DatasetError, match=r"broken\.jpg: unreadable"):
        ds.load(ds.names.index("broken"))
    with pytest.raises(DatasetError, match=r"grey\.png: mask is not binary \(values 0, 100, 255\)"):
        ds.load(ds.names.index("grey"))
    with pytest.raises(DatasetError, match=r"size\.png: mask size 8x7 != image size 8x6"):
        ds.load(ds.names.index("size"))
    with pytest.raises(DatasetError):
        list(ds)
    ds = FolderPairs(tmp_path, skip_bad=True)
    assert [s.name for s in ds] == ["good"]
    assert sorted(n for n, _ in ds.skipped) == ["broken", "grey", "size"]
    # grey masks are fine when thresholding is asked for (>= 128)
    ds = FolderPairs(tmp_path, skip_bad=True, binarize=True)
    assert [s.name for s in ds] == ["good", "grey"]


def test_duplicate_stems_rejected(tmp_path):
    make_pairs(tmp_path, ["a"])
    write_img(tmp_path / "images" / "a.png")
    with pytest.raises(DatasetError, match="same stem"):
        FolderPairs(tmp_path)


def test_zero_one_masks_accepted(tmp_path):
    make_pairs(tmp_path, ["a"])
    write_mask(tmp_path / "masks" / "a.png", (binary_mask() > 0).astype(np.uint8))
    assert FolderPairs(tmp_path)[0].mask.sum() == 12


# --- named layouts -------------------------------------------------------------------------------


def soft_mask():
    m = binary_mask()
    m[0, 0] = 128  # anti-aliased edge pixels: >= 128 is foreground
    m[0, 1] = 127
    return m


@pytest.mark.parametrize(
    ("layout", "img_dir", "mask_dir", "names"),
    [
        ("ecssd", "images", "ground_truth_mask", ["0001", "0002"]),
        ("duts-te", "DUTS-TE/DUTS-TE-Image", "DUTS-TE/DUTS-TE-Mask", ["ILSVRC2012_test_00000003"]),
        ("dut-omron", "DUT-OMRON-image", "pixelwiseGT-new-PNG", ["im005", "sun_aaabhshfqutsklcz"]),
    ],
)
def test_saliency_layouts(tmp_path, layout, img_dir, mask_dir, names):
    for n in names:
        write_img(tmp_path / img_dir / f"{n}.jpg")
        write_mask(tmp_path / mask_dir / f"{n}.png", soft_mask())
    ds = load_layout(layout, tmp_path)
    assert ds.names == sorted(names)
    m = ds[0].mask
    assert m[0, 0] and not m[0, 1] and m.sum() == 13


def test_cub_redo_split(tmp_path):
    root = tmp_path / "CUB_200_2011"
    files = {
        1: "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
        2: "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg",
        3: "002.Laysan_Albatross/Laysan_Albatross_0001_545.jpg",
    }
    root.mkdir()
    (root / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in files.items()))
    (root / "train_val_test_split.txt").write_text("1 0\n2 2\n3 2\n")
    for p in files.values():
        write_img(root / "images" / p)
        seg = np.zeros((6, 8, 3), np.uint8)
        seg[2:4, 2:4] = 255
        seg[0, 0] = (128, 10, 10)  # soft annotator agreement; only channel 0 (R) counts
        seg[0, 1] = (127, 255, 255)
        write_mask(root / "segmentations" / p.replace(".jpg", ".png"), seg[..., ::-1])  # RGB
    ds = load_layout("cub", tmp_path)  # also finds CUB_200_2011/ one level down
    assert ds.names == [files[2][:-4], files[3][:-4]]
    m = ds[0].mask
    assert m.sum() == 5 and m[0, 0] and not m[0, 1]
    (root / "train_val_test_split.txt").unlink()
    with pytest.raises(DatasetError, match="ReDO"):
        load_layout("cub", root)


def test_flowers_redo_split_and_trimap_rule(tmp_path):
    from scipy.io import savemat

    savemat(
        str(tmp_path / "setid.mat"),
        {"trnid": np.array([[3, 1]]), "valid": np.array([[2]]), "tstid": np.array([[4]])},
    )
    seg = np.zeros((6, 8, 3), np.uint8)
    seg[..., 2] = 254  # blue background: (0, 0, 254)
    seg[2:4, 2:6] = (200, 30, 90)  # flower
    seg[0, 0] = (10, 0, 90)  # G == 0 -> background
    for i in (1, 2, 3, 4):
        write_img(tmp_path / "jpg" / f"image_{i:05d}.jpg")
        # PNG-encoded in the test to keep the colours exact (real files are JPEGs)
        path = tmp_path / "segmim" / f"segmim_{i:05d}.jpg"
        path.parent.mkdir(exist_ok=True)
        ok, buf = cv2.imencode(".png", seg[..., ::-1])
        assert ok
        path.write_bytes(buf.tobytes())
    ds = load_layout("flowers", tmp_path)
    assert ds.names == ["image_00001", "image_00003"]  # trnid = ReDO's test set
    assert ds[0].mask.sum() == 8
    rgb = np.array([[[0, 5, 5], [5, 0, 5], [5, 5, 254], [5, 5, 253]]], np.uint8)
    assert flowers_trimap_foreground(rgb).tolist() == [[False, False, False, True]]


def test_unknown_layout():
    with pytest.raises(DatasetError, match="unknown layout 'pascal'"):
        load_layout("pascal", ".")


# --- WSOL metadata ---------------------------------------------------------------------------


def test_real_wsol_metadata(shared_data):
    root = shared_data / "wsol_metadata"
    cub = load_wsol_metadata(root / "CUB" / "test")
    assert len(cub.image_ids) == 5794
    first = cub.image_ids[:3]
    # the reference's own BoxEvaluatorTest verification values
    assert [cub.boxes[i] for i in first] == [
        [(60, 27, 385, 331)],
        [(14, 112, 402, 298)],
        [(33, 53, 284, 448)],
    ]
    assert [cub.sizes[i] for i in first] == [(500, 335), (500, 347), (500, 470)]
    inet = load_wsol_metadata(root / "ILSVRC" / "test")
    assert len(inet.image_ids) == 50000
    assert inet.boxes[inet.image_ids[1]] == [(45, 49, 499, 162), (2, 69, 437, 207)]
    oi = load_wsol_metadata(root / "OpenImages" / "test")
    assert len(oi.image_ids) == 5000 and oi.has_masks
    assert all(oi.ignore_paths[i] for i in oi.image_ids)


def test_wsol_dataset_boxes_and_masks(tmp_path, shared_data):
    meta = load_wsol_metadata(shared_data / "wsol_metadata" / "CUB" / "test")
    ids = meta.image_ids[:2]
    for i in ids:
        w, h = meta.sizes[i]
        write_img(tmp_path / i, h, w)
    ds = WsolDataset(meta, tmp_path, limit=2)
    samples = list(ds)
    assert samples[0].boxes.tolist() == [[26, 18, 172, 221]]  # int(60*224/500), int(27*224/335)...
    write_img(tmp_path / ids[1], 10, 10)
    with pytest.raises(DatasetError, match="differs from image_sizes"):
        list(WsolDataset(meta, tmp_path, limit=2))
    ds = WsolDataset(meta, tmp_path, limit=3, skip_bad=True)
    assert len(list(ds)) == 1 and len(ds.skipped) == 2  # wrong size + missing file

    # OpenImages-style masks: union of instances, ignore box
    md = tmp_path / "oi"
    md.mkdir()
    (md / "image_ids.txt").write_text("test/c/a.jpg\n")
    (md / "class_labels.txt").write_text("test/c/a.jpg,0\n")
    (md / "image_sizes.txt").write_text("")
    (md / "localization.txt").write_text(
        "test/c/a.jpg,test/c/a_m1.png,test/c/a_ignore.png\ntest/c/a.jpg,test/c/a_m2.png,\n"
    )
    write_img(tmp_path / "oi_img" / "test/c/a.jpg", 20, 30)
    m1, m2, ig = (np.zeros((20, 30), np.uint8) for _ in range(3))
    m1[:10] = 255
    m2[15:] = 255
    ig[:, :15] = 255
    for name, m in (("a_m1", m1), ("a_m2", m2), ("a_ignore", ig)):
        write_mask(tmp_path / "oi_masks" / "test/c" / f"{name}.png", m)
    s = next(iter(WsolDataset(md, tmp_path / "oi_img", tmp_path / "oi_masks")))
    assert s.mask.shape == (224, 224) and s.boxes is None
    assert s.mask[:100].all() and not s.mask[120:160].any() and s.mask[180:].all()
    assert s.ignore[:, :100].all() and not s.ignore[:, 120:].any()
