"""The manual holds together: README.md and docs/ link only to files and headings that exist,
every page is in mkdocs.yml's nav, the README stays short, and no file of the repository points
at documents that are not in it. `mkdocs build --strict` (scripts/test.sh) checks the site; this
test also covers README.md, which the site does not contain, and runs in a fraction of a second."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 200
# documents that live outside the repository: a reference to them is a dead end for a reader
OUTSIDE = ("../shared/docs", "PAPER.md", "METRICS.md")
OUTSIDE_EXEMPT = ("tests/test_docs.py", "toyworld/weights/")

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def prose_lines(path: Path) -> list[str]:
    """The lines of a markdown file outside fenced code blocks, with inline code removed."""
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(INLINE_CODE.sub("", line))
    return out


def heading_text(raw: str) -> str:
    """A heading's text as rendered: link text kept, emphasis and code markers dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return re.sub(r"[`*_]", "", text)


def anchors(path: Path) -> set[str]:
    """The ids Python-Markdown's toc extension gives the headings of `path` (mkdocs' default)."""
    found: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slugify(heading_text(m.group(2)), "-")
            slug, n = base, 0
            while slug in found:  # toc's rule for repeated headings: -1, -2, ...
                n += 1
                slug = f"{base}_{n}"
            found.add(slug)
    return found


def links(path: Path) -> list[str]:
    return [m.group(1) for line in prose_lines(path) for m in LINK.finditer(line)]


def broken_links(path: Path) -> list[str]:
    wrong = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}: {target}"
        if not dest.exists():
            wrong.append(f"{where} (no such file)")
        elif ROOT not in dest.parents and dest != ROOT:
            wrong.append(f"{where} (outside the repository)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            wrong.append(f"{where} (no heading with that anchor)")
    return wrong


def repository_files() -> list[str]:
    """Tracked files plus new ones git does not ignore (files being added count too)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(set(out))


def nav_pages(nav) -> list[str]:
    """Every page named in mkdocs.yml's nav, at any depth."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return []


def test_relative_links_point_to_existing_files_and_headings():
    wrong = [w for path in [ROOT / "README.md", *pages()] for w in broken_links(path)]
    assert not wrong, "broken links:\n" + "\n".join(wrong)


def test_the_link_check_catches_a_missing_file_and_a_missing_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# A title\n\n## The `--x` option\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#a-title) [ok](a.md#the-x-option) [ok](https://example.org/x.md)\n"
        "`[not a link](nope.md)`\n```\n[not a link](nope.md)\n```\n"
        "[bad](nope.md) [bad](a.md#no-such-heading) [bad](#missing-here)\n"
    )
    assert broken_links(page) == [
        "b.md: nope.md (no such file)",
        "b.md: a.md#no-such-heading (no heading with that anchor)",
        "b.md: #missing-here (no heading with that anchor)",
    ]


def test_readme_stays_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config.get("docs_dir", "docs") == "docs"
    listed = nav_pages(config.get("nav"))
    on_disk = [p.relative_to(DOCS).as_posix() for p in pages()]
    missing = sorted(set(on_disk) - set(listed))
    absent = sorted(set(listed) - set(on_disk))
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"
    assert not absent, f"nav entries without a page: {absent}"
    assert len(listed) == len(set(listed)), "a page is listed twice in the nav"


DOCUMENT_NAME = re.compile(rb"(?<![\w/.-])(?:[\w.-]+/)*([A-Z][A-Z0-9_-]*\.md)\b")


def missing_documents(files: list[str], root: Path) -> list[str]:
    """'file: NAME.md' for each reference in `files` to a document named in capitals (README.md,
    DESIGN.md, ...) that no file of the repository is called."""
    present = {Path(rel).name for rel in files}
    wrong = []
    for rel in files:
        path = root / rel
        if rel.startswith(OUTSIDE_EXEMPT) or not path.is_file():
            continue
        for name in sorted(set(DOCUMENT_NAME.findall(path.read_bytes()))):
            if name.decode() not in present:
                wrong.append(f"{rel}: {name.decode()}")
    return wrong


def test_every_document_a_file_names_is_in_the_repository():
    wrong = missing_documents(repository_files(), ROOT)
    assert not wrong, "references to documents the repository does not hold:\n" + "\n".join(wrong)


def test_the_document_check_catches_a_comment_citing_an_absent_document(tmp_path):
    (tmp_path / "README.md").write_text("# r\n")
    (tmp_path / "code.py").write_text("# see DESIGN.md and README.md; docs/GUIDE.md too\n")
    (tmp_path / "ok.py").write_text("x = 'OUT/report.md'  # an output file, not a document\n")
    files = ["README.md", "code.py", "ok.py"]
    assert missing_documents(files, tmp_path) == ["code.py: DESIGN.md", "code.py: GUIDE.md"]


@pytest.mark.parametrize("needle", OUTSIDE)
def test_no_file_points_at_documents_outside_the_repository(needle):
    hits = []
    for rel in repository_files():
        if rel.startswith(OUTSIDE_EXEMPT):
            continue
        path = ROOT / rel
        if not path.is_file():  # deleted in the working tree, not yet in the index
            continue
        if needle.encode() in path.read_bytes():
            hits.append(rel)
    assert not hits, f"{needle!r} is not in the repository, but these files refer to it: {hits}"
