"""The house rules, checked on the source: imports stay one-way between the packages, TensorFlow
stays inside the TF-Hub backend, benchmarks use only public names and no hand-made paths, and
modules stay small. docs/architecture.md draws the same picture."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("segcore", "toyworld", "generator", "trainer", "eval")
# package -> the project packages it may import (besides itself)
ALLOWED = {
    "segcore": set(),
    "toyworld": {"segcore"},
    "generator": {"segcore"},
    "trainer": {"segcore"},
    "eval": {"segcore"},
}
# the one place each extra edge is allowed: the generator's thin backend of the embedded GAN, and
# the trainer's validation, which scores with eval's own metrics, loaders and inference protocol
EXCEPTIONS = {("generator/gans/toyworld.py", "toyworld"), ("trainer/validate.py", "eval")}
TENSORFLOW_MODULES = {"generator/gans/bigbigan_hub.py"}
MAX_LINES = 400


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(ROOT / p for p in out if (ROOT / p).is_file())


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import statement, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def package_files() -> list[Path]:
    return [p for p in tracked(*(f"{pkg}/*.py" for pkg in PACKAGES))]


def one_way_violations(root: Path, files: list[Path]) -> list[str]:
    wrong = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        own = rel.split("/")[0]
        for module, _, line in imports(path):
            top = module.split(".")[0]
            if (
                top in PACKAGES
                and top != own
                and top not in ALLOWED[own]
                and (rel, top) not in EXCEPTIONS
            ):
                wrong.append(f"{rel}:{line} imports {module}")
    return wrong


def test_imports_are_one_way():
    wrong = one_way_violations(ROOT, package_files())
    assert not wrong, "imports against the one-way rule:\n" + "\n".join(wrong)


def test_the_one_way_check_catches_a_late_import(tmp_path):
    """eval importing the trainer inside a function, and generator importing toyworld outside
    its backend, are both caught; the allowed edges are not."""
    (tmp_path / "eval").mkdir()
    (tmp_path / "generator" / "gans").mkdir(parents=True)
    bad = tmp_path / "eval" / "x.py"
    bad.write_text("import os\n\n\ndef f():\n    from trainer.unet import UNet\n")
    stray = tmp_path / "generator" / "run2.py"
    stray.write_text("import toyworld.model\n")
    ok = tmp_path / "generator" / "gans" / "toyworld.py"
    ok.write_text("from toyworld import DEFAULT_WEIGHTS\nfrom segcore import storage\n")
    assert one_way_violations(tmp_path, [bad, stray, ok]) == [
        "eval/x.py:5 imports trainer.unet",
        "generator/run2.py:1 imports toyworld.model",
    ]


def test_tensorflow_only_in_the_hub_backend():
    wrong = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in package_files()
        for module, _, line in imports(p)
        if module.split(".")[0] in ("tensorflow", "tensorflow_hub", "tf_keras")
        and p.relative_to(ROOT).as_posix() not in TENSORFLOW_MODULES
    ]
    assert not wrong, f"TensorFlow imported outside {sorted(TENSORFLOW_MODULES)}: {wrong}"


def test_benchmarks_use_public_names_and_the_environment():
    wrong = []
    for path in tracked("benchmarks/*.py"):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        if ".venv/" in text:
            wrong.append(f"{rel}: names a .venv/ path (use sys.executable or PATH)")
        if "sys.path" in text:
            wrong.append(f"{rel}: edits sys.path (the project is installed in the venv)")
        for module, names, line in imports(path):
            hidden = [n for n in names if private(n)]
            if module.split(".")[0] in PACKAGES and hidden:
                wrong.append(f"{rel}:{line} imports private {hidden} from {module}")
    assert not wrong, "\n".join(wrong)


def test_no_private_imports_across_modules():
    """A module's `_name` is its own: other modules of the project do not import it."""
    wrong = [
        f"{p.relative_to(ROOT)}:{line} imports {names} from {module}"
        for p in package_files()
        for module, names, line in imports(p)
        if module.split(".")[0] in PACKAGES and any(private(n) for n in names)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("folder", [*PACKAGES, "benchmarks", "scripts", "tests"])
def test_modules_stay_small(folder):
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in tracked(f"{folder}/*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not big, f"modules over {MAX_LINES} lines: {big}"
