"""The repository's references resolve (docs/method.md is the project's reference page).

* No text file names the private briefing files that the project was planned from, or the
  folder they lived in: they are not part of the repository, so a reader could not follow
  such a reference. (The forbidden strings are assembled from parts so that this file does
  not trip over itself.)
* Every Markdown file mentioned in the repository's text (code, docs, notebooks, configs)
  exists, relative to the mentioning file's folder or to the repository root, and every
  ``#anchor`` on it names a heading of that file (GitHub's slugs).
* Every ``§N`` names a numbered section of docs/method.md (the project's convention: ``§``
  always refers to that page; the paper's sections are unnumbered), and every defect or
  protocol name such as ``D1 "OT gradient"`` or ``§6 P2`` matches docs/method.md §5 and §6.

Files are those git tracks plus untracked ones that git does not ignore, so new files are
checked before their first commit.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = "docs/method.md"

FORBIDDEN = ("PAPER" + ".md", "NOTES" + ".md", ".." + "/shared")

# Where Markdown files can be mentioned: by suffix, plus two extension-less files.
MENTION_SUFFIXES = (".py", ".md", ".ipynb", ".toml", ".yml")
MENTION_FILES = ("Makefile", ".ci/run")

# Written into a run folder at run time (dlfd.experiment), so it exists only after a run.
GENERATED = {"report.md"}

# The stable names of docs/method.md §5 and §6; code and notebooks cite them.
NAMES = {
    "D1": "OT gradient", "D2": "normalised clamp", "D3": "test-set selection",
    "D4": "BatchNorm mode", "D5": "unbalanced MIA", "D6": "single runs",
    "P1": "memorisation", "P2": "MIA noise", "P3": "steps per epoch", "P4": "threshold",
    "P5": "Fashion-MNIST", "P6": "forget one person", "P7": "robust defaults",
}
NAME_SECTION = {"D": "5", "P": "6"}

# A token ending in ".md" (optionally "#anchor"). The look-behind rejects the middle of a
# longer token, URLs and templates such as "<out_dir>/report.md" or f"{stem}.md".
MD_MENTION = re.compile(r"(?<![\w./{}<>$*%-])((?:\.\.?/)*\w[\w./-]*?\.md)(?:#([\w-]+))?(?![\w/])")
SECTION_REF = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s*,?\s*([DP]\d+)\b)?")
NAMED_REF = re.compile(r"\b([DP]\d+)\s+[\"“]([^\"”\n]{1,40})[\"”]")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
NUMBERED = re.compile(r"^(\d+(?:\.\d+)?)\.?\s")
NAMED_HEADING = re.compile(r"^([DP]\d+)\s+\"([^\"]+)\"$")


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def repo_files() -> tuple[str, ...]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout: the file list comes from git ls-files")
    names = {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}
    return tuple(sorted(p for p in names if (ROOT / p).is_file()))


@functools.lru_cache(maxsize=None)
def raw_text(rel: str) -> str | None:
    """The file as text, or None for a binary file."""
    data = (ROOT / rel).read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", "replace")


def mentioning_files() -> list[str]:
    return [p for p in repo_files() if p.endswith(MENTION_SUFFIXES) or p in MENTION_FILES]


@functools.lru_cache(maxsize=None)
def chunks(rel: str) -> tuple[tuple[str, str], ...]:
    """(where, text) pieces to scan for references: a notebook's cell sources, each as one
    piece (outputs are generated), or a file's lines."""
    text = raw_text(rel)
    if text is None:
        return ()
    if rel.endswith(".ipynb"):
        cells = json.loads(text)["cells"]
        return tuple((f"cell {i}", "".join(c.get("source", ""))) for i, c in enumerate(cells))
    return tuple((f"line {i}", line) for i, line in enumerate(text.splitlines(), 1))


def github_slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    title = re.sub(r"`([^`]*)`", r"\1", title.strip().lower())
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


@functools.lru_cache(maxsize=None)
def headings(rel: str) -> tuple[tuple[int, str], ...]:
    """(level, title) of every Markdown heading outside fenced code blocks."""
    out, fenced = [], False
    for line in (ROOT / rel).read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def anchors(rel: str) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, title in headings(rel):
        s = github_slug(title)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return frozenset(out)


@functools.lru_cache(maxsize=None)
def method_structure() -> tuple[frozenset[str], dict[str, tuple[str, str]]]:
    """docs/method.md's section numbers and its named entries {id: (name, section)}."""
    sections, names, current = set(), {}, None
    for level, title in headings(METHOD):
        m = NUMBERED.match(title)
        if m and level in (2, 3):
            sections.add(m.group(1))
            if level == 2:
                current = m.group(1)
            continue
        if level == 2:
            current = None
        m = NAMED_HEADING.match(title)
        if m:
            names[m.group(1)] = (m.group(2), current)
    return frozenset(sections), names


def resolve(rel: str, target: str) -> Path | None:
    for base in ((ROOT / rel).parent, ROOT):
        p = (base / target).resolve()
        if p.is_file():
            return p
    return None


def report(problems: list[str], what: str) -> None:
    assert not problems, f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------- tests


def test_method_page_has_the_cited_structure():
    """The headings other files cite, and the stable D/P names under the right sections."""
    assert (ROOT / METHOD).is_file(), f"{METHOD} is missing"
    sections, names = method_structure()
    missing = {"1", "2", "2.1", "2.2", "2.3", "3", "4", "5", "6"} - sections
    assert not missing, f"{METHOD} lacks numbered sections {sorted(missing)}"
    problems = []
    for key, name in NAMES.items():
        if key not in names:
            problems.append(f'{key} "{name}": no heading ### {key} "{name}"')
            continue
        got, section = names[key]
        if got != name:
            problems.append(f'{key}: heading says "{got}", the stable name is "{name}"')
        if section != NAME_SECTION[key[0]]:
            problems.append(f"{key}: under §{section}, expected §{NAME_SECTION[key[0]]}")
    report(problems, f"problems with {METHOD}'s named entries")


def test_no_reference_to_files_outside_the_repository():
    problems = []
    for rel in repo_files():
        text = raw_text(rel)
        if text is None:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            problems += [f"{rel}:{i}: {bad!r}" for bad in FORBIDDEN if bad in line]
    report(problems, "references to files that are not in the repository")


def test_markdown_mentions_resolve():
    problems = []
    for rel in mentioning_files():
        for where, text in chunks(rel):
            for m in MD_MENTION.finditer(text):
                target, anchor = m.group(1), m.group(2)
                path = resolve(rel, target)
                if path is None:
                    if Path(target).name not in GENERATED:
                        problems.append(f"{rel} ({where}): {target} does not exist")
                    continue
                if anchor and anchor not in anchors(str(path.relative_to(ROOT))):
                    problems.append(f"{rel} ({where}): {target}#{anchor}: no such heading")
    report(problems, "Markdown references that do not resolve")


def test_section_and_defect_references_exist():
    sections, names = method_structure()
    problems = []
    for rel in mentioning_files():
        for where, text in chunks(rel):
            for m in SECTION_REF.finditer(text):
                number, key = m.group(1), m.group(2)
                if number not in sections:
                    problems.append(f"{rel} ({where}): §{number} is not a section of {METHOD}")
                elif key and (key not in names or names[key][1] != number):
                    problems.append(f"{rel} ({where}): §{number} {key} is not in {METHOD} "
                                    f"§{number}")
            for m in NAMED_REF.finditer(text):
                key, name = m.group(1), m.group(2)
                if key not in names:
                    problems.append(f'{rel} ({where}): {key} "{name}" is not in {METHOD}')
                elif names[key][0] != name:
                    problems.append(f'{rel} ({where}): {key} "{name}"; {METHOD} calls it '
                                    f'{key} "{names[key][0]}"')
    report(problems, f"section or defect references missing from {METHOD}")
