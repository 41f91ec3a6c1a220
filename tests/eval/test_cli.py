"""`python -m eval` end to end (subprocess) on tiny synthetic data with exported models, and
every bad input -> one line on stderr, exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


def run_eval(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "eval", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_usage_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("python -m eval: error:")
    for f in fragments:
        assert f in lines[0], lines[0]


class Brightness(torch.nn.Module):
    """Foreground = bright pixels: a parameter-free 'segmenter' with a known right answer."""

    def forward(self, x):
        return torch.sigmoid(20.0 * x.mean(dim=1, keepdim=True))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from segcore.modelfile import export_model

    path = tmp_path_factory.mktemp("model") / "model.pt2"
    return export_model(Brightness(), path, {"resolution": 128, "note": "test"})


def rect_pair(h, w, box):
    x0, y0, x1, y1 = box
    img = np.full((h, w, 3), 20, np.uint8)
    img[y0 : y1 + 1, x0 : x1 + 1] = 235
    mask = np.zeros((h, w), np.uint8)
    mask[y0 : y1 + 1, x0 : x1 + 1] = 255
    return img, mask


def make_folder(root: Path, n=4, nested=False):
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = (48, 64) if i % 2 else (60, 40)
        x0, y0 = int(rng.integers(2, 10)), int(rng.integers(2, 10))
        img, mask = rect_pair(h, w, (x0, y0, x0 + 20, y0 + 25))
        name = f"seq{i % 2}/{i:03d}" if nested else f"{i:03d}"
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "masks" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{name}.png"), img[..., ::-1])
        cv2.imwrite(str(root / "masks" / f"{name}.png"), mask)
    return root


# --- happy paths ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_saliency_end_to_end(tmp_path, model_file):
    data = make_folder(tmp_path / "data", nested=True)
    out = tmp_path / "report"
    r = run_eval("saliency", "--model", model_file, "--data", data, "--out", out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    for key in ("max_fbeta", "iou", "accuracy", "mae", "n_images", "mean_fbeta", "conventions"):
        assert key in m
    assert m["n_images"] == 4 and m["version"] == "0.1.0"
    assert m["conventions"]["beta_sq"] == 0.3 and m["conventions"]["threshold_op"] == ">"
    assert m["predictor"]["short_side"] == 128 and m["predictor"]["quantize"] is True
    # bright rectangle == mask: near perfect after the 128-px round trip
    assert m["max_fbeta"] > 0.97 and m["iou"] > 0.9 and m["accuracy"] > 0.97
    for f in ("summary.md", "curves.png", "grid.png", "per_image.json"):
        assert (out / f).stat().st_size > 0
    assert "| 4 |" in (out / "summary.md").read_text()
    assert not list(out.glob(".*tmp"))  # no temp files left behind

    # the library function gives the same numbers as the CLI
    from eval.datasets import FolderPairs
    from eval.inference import Predictor
    from eval.report import evaluate_and_report

    lib = evaluate_and_report(
        Predictor(model_file), FolderPairs(data), str(tmp_path / "lib"), "x", progress=False
    )
    assert lib["max_fbeta"] == m["max_fbeta"] and lib["iou"] == m["iou"]


def test_maps_perfect_and_npy(tmp_path):
    data = make_folder(tmp_path / "data")
    pred = tmp_path / "pred"
    pred.mkdir()
    for i, f in enumerate(sorted((data / "masks").iterdir())):
        m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if i % 2:
            np.save(pred / f"{f.stem}.npy", m / 255.0)
        else:
            cv2.imwrite(str(pred / f.name), m)
    out = tmp_path / "rep"
    r = run_eval(
        "maps", "--pred", pred, "--gt", data / "masks", "--images", data / "images", "--out", out
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images"] == 4
    assert m["max_fbeta"] == 1.0 and m["iou"] == 1.0 and m["accuracy"] == 1.0 and m["mae"] == 0.0
    assert (out / "grid.png").is_file()


def test_maps_skip_bad_is_reported(tmp_path):
    data = make_folder(tmp_path / "data")
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in sorted((data / "masks").iterdir()):
        cv2.imwrite(str(pred / f.name), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))
    np.save(pred / "extra.npy", np.zeros((4, 4)))  # no mask with that name
    cv2.imwrite(str(pred / "001.png"), np.zeros((5, 5), np.uint8))  # wrong size
    r = run_eval("maps", "--pred", pred, "--gt", data / "masks", "--out", tmp_path / "r")
    assert_usage_error(r, "extra.npy", "no mask")
    r = run_eval(
        "maps", "--pred", pred, "--gt", data / "masks", "--out", tmp_path / "r", "--skip-bad"
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["n_images"] == 3
    assert sorted(s["name"] for s in m["skipped"]) == ["001", "extra"]
    assert "Skipped 2 pair(s)" in (tmp_path / "r" / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.integration
def test_predict_writes_maps_and_masks(tmp_path, model_file):
    data = make_folder(tmp_path / "data", n=2, nested=True)
    out = tmp_path / "pred"
    r = run_eval("predict", "--model", model_file, "--images", data / "images", "--out", out)
    assert r.returncode == 0, r.stderr
    prob = cv2.imread(str(out / "prob" / "seq0" / "000.png"), cv2.IMREAD_GRAYSCALE)
    mask = cv2.imread(str(out / "mask" / "seq0" / "000.png"), cv2.IMREAD_GRAYSCALE)
    gt = cv2.imread(str(data / "masks" / "seq0" / "000.png"), cv2.IMREAD_GRAYSCALE)
    assert prob.shape == gt.shape and set(np.unique(mask)) <= {0, 255}
    assert ((mask > 0) == (gt > 0)).mean() > 0.97
    assert json.loads((out / "predict.json").read_text())["n_images"] == 2


def write_cub_like(root: Path, boxes, size=(80, 60)):
    """WSOL metadata + images: bright rectangles exactly at the ground-truth boxes."""
    meta, images = root / "meta", root / "images"
    meta.mkdir(parents=True)
    ids = [f"001.Bird/Bird_{i:04d}.jpg" for i in range(len(boxes))]
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    (meta / "image_sizes.txt").write_text("".join(f"{i},{size[0]},{size[1]}\n" for i in ids))
    (meta / "localization.txt").write_text(
        "".join(f"{i},{b[0]},{b[1]},{b[2]},{b[3]}\n" for i, b in zip(ids, boxes, strict=True))
    )
    for i, b in zip(ids, boxes, strict=True):
        img, _ = rect_pair(size[1], size[0], b)
        (images / i).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(images / i), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    return meta, images


@pytest.mark.slow
@pytest.mark.integration
def test_wsol_boxes_and_pxap(tmp_path, model_file):
    meta, images = write_cub_like(tmp_path / "cub", [(10, 8, 50, 40), (30, 20, 70, 55)])
    out = tmp_path / "rep"
    r = run_eval(
        "wsol", "--model", model_file, "--dataset", "cub", "--metadata", meta,
        "--images", images, "--out", out, "--interval", "0.01",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images"] == 2 and m["interval"] == 0.01
    assert m["maxboxacc_v1"] == 100.0 and m["maxboxacc_v2"] == 100.0
    assert (out / "curves.png").is_file() and (out / "summary.md").is_file()

    # OpenImages: one image, mask = the bright rectangle, an ignore box elsewhere
    oi = tmp_path / "oi"
    (oi / "meta").mkdir(parents=True)
    (oi / "meta" / "image_ids.txt").write_text("test/c/a.jpg\n")
    (oi / "meta" / "class_labels.txt").write_text("test/c/a.jpg,0\n")
    (oi / "meta" / "image_sizes.txt").write_text("")
    (oi / "meta" / "localization.txt").write_text("test/c/a.jpg,test/c/a_m.png,test/c/a_ig.png\n")
    img, mask = rect_pair(64, 64, (16, 16, 47, 47))
    (oi / "img" / "test" / "c").mkdir(parents=True)
    cv2.imwrite(str(oi / "img" / "test" / "c" / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(oi / "img" / "test" / "c" / "a_m.png"), mask)
    ignore = np.zeros((64, 64), np.uint8)
    ignore[:8, :8] = 255
    cv2.imwrite(str(oi / "img" / "test" / "c" / "a_ig.png"), ignore)
    r = run_eval(
        "wsol", "--model", model_file, "--dataset", "openimages", "--metadata", oi / "meta",
        "--images", oi / "img", "--out", tmp_path / "rep_oi",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "rep_oi" / "metrics.json").read_text())
    assert m["pxap"] > 95.0 and m["n_images"] == 1

    # dataset kind must match the metadata
    r = run_eval(
        "wsol", "--model", model_file, "--dataset", "openimages", "--metadata", meta,
        "--images", images, "--out", tmp_path / "x",
    )  # fmt: skip
    assert_usage_error(r, "box (CUB/ImageNet) metadata")


# --- bad input: one line, exit 2 -------------------------------------------------------------


def test_bad_paths_and_names(tmp_path):
    data = make_folder(tmp_path / "data", n=2)
    fake_model = tmp_path / "m" / "model.pt2"
    fake_model.parent.mkdir()
    fake_model.write_bytes(b"garbage")
    (tmp_path / "m" / "model.json").write_text('{"format": "torch.export/v1"}')
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    out = tmp_path / "out"
    cases = [
        (("saliency", "--model", fake_model, "--data", tmp_path / "nope", "--out", out), "nope"),
        (("saliency", "--model", tmp_path / "no.pt2", "--data", data, "--out", out), "no.pt2"),
        (("saliency", "--model", fake_model, "--data", data, "--out", out), "not a torch.export"),
        (
            ("saliency", "--model", fake_model, "--data", data, "--layout", "pascal", "--out", out),
            "unknown layout 'pascal'",
        ),
        (("baseline", "--method", "center", "--data", empty, "--out", out), "no image files"),
        (
            ("predict", "--model", fake_model, "--images", data, "--out", out, "--device", "tpu9"),
            "--device 'tpu9'",
        ),
        (("baseline", "--method", "hs", "--data", data, "--out", out), "unknown --method"),
        (
            ("baseline", "--method", "center", "--data", data, "--out", out, "--limit", "x"),
            "--limit",
        ),
        (("baseline", "--data", data, "--out", out), "required: --method"),
        (
            ("predict", "--model", fake_model, "--images", empty / "images", "--out", out),
            "no image",
        ),
        (("maps", "--pred", tmp_path / "nope", "--gt", data / "masks", "--out", out), "--pred"),
        (
            (
                "wsol",
                "--model",
                fake_model,
                "--dataset",
                "cub",
                "--metadata",
                tmp_path / "nm",
                "--images",
                data,
                "--out",
                out,
            ),
            "no such metadata folder",
        ),
    ]
    for args, fragment in cases:
        assert_usage_error(run_eval(*args), fragment)
    assert not out.exists()  # nothing half-written


def test_bad_prediction_values(tmp_path):
    data = make_folder(tmp_path / "data", n=2)
    for value, fragment in ((np.nan, "NaN"), (1.5, "[0, 1]"), (-0.2, "[0, 1]")):
        pred = tmp_path / f"pred{value}"
        pred.mkdir()
        for f in sorted((data / "masks").iterdir()):
            m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) / 255.0
            m[0, 0] = value
            np.save(pred / f"{f.stem}.npy", m)
        r = run_eval("maps", "--pred", pred, "--gt", data / "masks", "--out", tmp_path / "o")
        assert_usage_error(r, ".npy", fragment)
    # size mismatch and non-binary masks name the file
    pred = tmp_path / "pred_size"
    pred.mkdir()
    cv2.imwrite(str(pred / "000.png"), np.zeros((5, 5), np.uint8))
    cv2.imwrite(str(pred / "001.png"), np.zeros((5, 5), np.uint8))
    r = run_eval("maps", "--pred", pred, "--gt", data / "masks", "--out", tmp_path / "o")
    assert_usage_error(r, "000.png", "prediction size 5x5")
    grey = cv2.imread(str(data / "masks" / "000.png"), cv2.IMREAD_GRAYSCALE)
    grey[0, 0] = 77
    cv2.imwrite(str(data / "masks" / "000.png"), grey)
    r = run_eval("baseline", "--method", "center", "--data", data, "--out", tmp_path / "o")
    assert_usage_error(r, "000.png", "not binary")
    r = run_eval(
        "baseline", "--method", "center", "--data", data, "--layout", "folder-grey",
        "--out", tmp_path / "o2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr


class NaNModel(torch.nn.Module):
    def forward(self, x):
        return torch.sigmoid(x.mean(dim=1, keepdim=True)) * float("nan")


@pytest.mark.slow
@pytest.mark.integration
def test_model_returning_nan_is_a_usage_error(tmp_path):
    from segcore.modelfile import export_model

    model = export_model(NaNModel(), tmp_path / "nan" / "model.pt2", {"resolution": 128})
    data = make_folder(tmp_path / "data", n=2)
    r = run_eval("saliency", "--model", model, "--data", data, "--out", tmp_path / "o")
    assert_usage_error(r, "model output contains NaN")
    assert not (tmp_path / "o" / "metrics.json").exists()


@pytest.mark.integration
def test_report_written_to_object_storage(s3_env, tmp_path):
    """--out may be an s3:// URL: every report file lands as one object."""
    from eval.datasets import FolderPairs
    from eval.report import evaluate_and_report
    from segcore import storage

    class Perfect:  # predicts the ground truth itself (looked up by image content)
        batch_size = 4

        def __init__(self, ds):
            self.by_bytes = {s.image.tobytes(): s.mask for s in ds}

        def predict(self, image):
            return self.by_bytes[image.tobytes()].astype(np.float32)

        def predict_batch(self, images):
            return [self.predict(im) for im in images]

    ds = FolderPairs(make_folder(tmp_path / "data", n=3))
    url = f"s3://{s3_env.bucket}/reports/perfect"
    r = evaluate_and_report(Perfect(ds), ds, url, name="perfect", progress=False)
    assert r["max_fbeta"] == 1.0 and r["iou"] == 1.0
    stored = json.loads(storage.read_bytes(f"{url}/metrics.json"))
    assert stored["n_images"] == 3 and stored["iou"] == 1.0
    assert sorted(storage.list_names(url)) == [
        "curves.png", "grid.png", "metrics.json", "per_image.json", "summary.md"
    ]  # fmt: skip


def test_help_shows_every_default():
    import argparse

    from eval.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"saliency", "maps", "wsol", "predict", "baseline"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = action.help or ""
            assert "(default:" in text or "(required)" in text, (name, action.option_strings)
