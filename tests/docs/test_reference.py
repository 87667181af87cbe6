"""The README guides and docs/ holds the reference: both are held to the code."""

from __future__ import annotations

import re

import pytest

from exporter.api.keys import ROUTES
from exporter.app import create_app
from exporter.cli import main
from exporter.settings import load_settings
from tests.support.docs import DOC_FILES, ROOT, code_spans, section, table

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = ("configuration", "probes", "api", "metrics", "library", "audit", "security", "desk",
         "operations", "runbook")


def test_the_readme_is_a_guide_of_at_most_15000_characters():
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))  # counted in bytes: a dash or arrow counts as 3
    assert size <= 15_000, f"README.md has {size} bytes"
    for page in PAGES:
        assert f"(docs/{page}.md)" in text, f"README.md does not link docs/{page}.md"


def test_every_docs_page_starts_with_its_title():
    for page in PAGES:
        first = (DOCS / f"{page}.md").read_text(encoding="utf-8").split("\n", 1)[0]
        assert first.startswith("# "), f"docs/{page}.md starts with {first!r}"


def _routes(tmp_path) -> set[tuple[str, str, str]]:
    path = tmp_path / "services.yaml"
    path.write_text("services: []\n")
    app = create_app(load_settings({"EXPORTER_CONFIG": str(path),
                                    "AUDIT_SQLITE_PATH": str(tmp_path / "audit.sqlite3")}))
    return {(r.method, r.path, r.level) for r in app[ROUTES]}


def test_docs_api_lists_every_route_with_its_level(tmp_path):
    documented = set()
    for row in table(section(DOCS / "api.md", "Routes")):
        method, path = code_spans(row["route"])[0].split("?")[0].split(" ", 1)
        documented.add((method, path, row["level"]))
    assert documented == _routes(tmp_path)


def _serve_flags(capsys) -> set[str]:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    return set(re.findall(r"--[a-z][a-z-]+", capsys.readouterr().out))


@pytest.mark.parametrize("page", [README, DOCS / "configuration.md"], ids=lambda p: p.name)
def test_every_documented_setting_and_flag_exists(page, capsys):
    heading = "Most-used settings" if page == README else "Settings"
    flags = _serve_flags(capsys)
    known = (ROOT / "exporter" / "settings.py").read_text() + (ROOT / "services.yaml").read_text()
    for row in table(section(page, heading)):
        for flag in code_spans(row["flag"]):
            assert flag in flags, f"{page.name}: serve has no {flag}"
        for variable in re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", row["variable"]):
            if variable != "FILE":
                assert variable in known, f"{page.name}: {variable} is read nowhere"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_and_anchor_resolves():
    for page in DOC_FILES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: link to {target}: no such file"
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                assert anchor in {_slug(h) for h in headings}, (
                    f"{page.name}: link to {target}: no such heading")


# Words that point at documents outside the repository. Each is written with a character
# class, so that this file does not hold the words it looks for.
WORDS = re.compile(r"(?-i:\bS[P]EC\b)|\bthe s[e]ed\b|\bs[e]ed's\b|base c[o]ntract|\bsecti[o]n \d",
                   re.I)
# Everything the repository ships: code, tests, docs, scripts, benchmarks, assets, images.
OWN_FILES = ("README.md", "Dockerfile", "docker-compose.yml", "services.yaml", "docs",
             "scripts", "bench", "grafana", "prometheus", ".ci", "exporter", "tests", "deploy")


def test_the_project_explains_itself_in_its_own_words():
    found = []
    for name in OWN_FILES:
        base = ROOT / name
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix in (".json", ".csv") and "results" in path.parts:
                continue  # measured data
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if WORDS.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
