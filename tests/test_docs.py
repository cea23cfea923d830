"""Every document the code cites is in the repository: docs/reference.md by section number, docs/design.md by
section title; nothing cites the team's specs outside it (REFERENCE / DESIGN / STYLE, ../shared)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List, Set, Tuple

from helpers import REPO

SCANNED = ("dpt", "tests", "benchmarks", "scripts", "docs")
TEXT_SUFFIXES = {".py", ".sh", ".md", ".txt", ".yaml", ".yml", ".cfg", ".ini", ".toml"}
THIS_FILE = Path(__file__).resolve()  # it names the forbidden patterns
TEST_DATA = REPO / "tests" / "data"

OUTSIDE_SPEC = re.compile(r"\b(?:REFERENCE|DESIGN|STYLE)(?:\.md)?\b|(?:\.\./|/work/)shared\b")
REFERENCE_CITATION = re.compile(r"docs/reference\.md,?\s+(\d+(?:\.\d+)?(?:\s*(?:,|/|-|and)\s*\d+(?:\.\d+)?)*)")
DESIGN_CITATION = re.compile(r"docs/design\.md\s+\"([^\"]+)\"")


def text_files(root: Path) -> Iterator[Path]:
    """README.md and the text files of the scanned folders (test data excluded)."""
    yield root / "README.md"
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*")):
            if (path.is_file() and path.suffix in TEXT_SUFFIXES and path.resolve() != THIS_FILE
                    and TEST_DATA not in path.parents):
                yield path


def reference_sections(reference: Path) -> Set[str]:
    """Section numbers of docs/reference.md: "## 7. Trainers" -> "7", "### 7.6 DPT (DPT.py)" -> "7.6"."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.?\s", reference.read_text(), re.M))


def design_sections(design: Path) -> Set[str]:
    return set(re.findall(r"^## (.+?)\s*$", design.read_text(), re.M))


def citation_problems(text: str, references: Set[str], designs: Set[str]) -> List[Tuple[int, str]]:
    """(line, problem) for each citation of an outside spec or of a docs/ section that does not exist."""
    problems = []

    def line(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    for m in OUTSIDE_SPEC.finditer(text):
        problems.append((line(m.start()), f"cites {m.group(0)!r}, which is not in the repository"))
    for m in REFERENCE_CITATION.finditer(text):
        for number in re.findall(r"\d+(?:\.\d+)?", m.group(1)):
            if number not in references:
                problems.append((line(m.start()), f"docs/reference.md has no section {number}"))
    for m in DESIGN_CITATION.finditer(text):
        title = " ".join(m.group(1).split())  # a title may wrap onto the next line
        if title not in designs:
            problems.append((line(m.start()), f"docs/design.md has no section {title!r}"))
    return problems


def test_citations_name_existing_sections_of_the_repositorys_docs():
    references = reference_sections(REPO / "docs" / "reference.md")
    designs = design_sections(REPO / "docs" / "design.md")
    found = [f"{path.relative_to(REPO)}:{line}: {problem}"
             for path in text_files(REPO)
             for line, problem in citation_problems(path.read_text(), references, designs)]
    assert found == []


def test_reference_keeps_the_numbering_code_cites():
    numbers = reference_sections(REPO / "docs" / "reference.md")
    expected = {str(n) for n in range(1, 11)} | {"1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "2.5", "4.1",
                                                 "4.2", "4.3", "4.4", "4.5", "4.6"}
    expected |= {f"7.{i}" for i in range(1, 9)} | {f"9.{i}" for i in range(1, 6)} | {f"10.{i}" for i in range(1, 7)}
    assert numbers == expected


def test_the_checker_sees_each_kind_of_bad_citation():
    text = ("ok (docs/reference.md 7.6, 8; docs/design.md \"Layout\")\n(REFERENCE.md 7.6)\n"
            "(docs/reference.md 7.9)\n(docs/reference.md 2.2-2.5 and 11)\n(docs/design.md \"One model,\n many\")\n"
            "see ../shared/notes\n")
    problems = citation_problems(text, {"7.6", "8", "2.2", "2.5"}, {"Layout"})
    assert problems == [
        (2, "cites 'REFERENCE.md', which is not in the repository"),
        (7, "cites '../shared', which is not in the repository"),
        (3, "docs/reference.md has no section 7.9"),
        (4, "docs/reference.md has no section 11"),
        (5, "docs/design.md has no section 'One model, many'"),
    ]
