"""The reference pages check against the code: docs/metrics.md lists exactly the metrics the
daemon exports, docs/configuration.md every key of the configuration and no other; docs/deploy.md
says how the alert rules are tested; and every link between the README and the docs pages
leads to a file and, with an anchor, to one of its headings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from streamem.service.config import Settings
from tests.deploy.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _section(page: str, title: str) -> str:
    text = (DOCS / page).read_text()
    start = text.index(f"{title}\n")
    following = re.compile(r"^#{2,3} ", re.MULTILINE).search(text, start + len(title) + 1)
    return text[start : following.start() if following else len(text)]


def test_the_metrics_page_lists_every_exported_metric_and_no_other(
    exported: dict[str, set[str]],
) -> None:
    rows = re.findall(
        r"^\| `(streamem_[a-z_]+)(?:\{[a-z,]+\})?` \| (\w+) \|",
        _section("metrics.md", "## Metrics"),
        re.MULTILINE,
    )
    listed = [name for name, _ in rows]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(exported)


def _leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    """The dotted paths of every key of a configuration section, its subsections expanded."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        kinds = [field.annotation, *getattr(field.annotation, "__args__", ())]
        sections = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]
        keys |= _leaves(sections[0], f"{prefix}{name}.") if sections else {prefix + name}
    return keys


def _documented_keys(text: str) -> set[str]:
    """The keys of the reference table's first column: `section.key`, then more keys of the
    same section (`a`, `b`, or `(+ a, b)`); `section.*` stands for a whole section."""
    keys: set[str] = set()
    for cell in re.findall(r"^\| (`[^|]*) \|", text, re.MULTILINE):
        first, *more = re.findall(r"`([a-z0-9_.*]+)`", cell)
        keys.add(first)
        keys |= {f"{first.rsplit('.', 1)[0]}.{name}" for name in more}
    return keys


def test_the_configuration_page_lists_every_key_and_no_other() -> None:
    documented = _documented_keys((DOCS / "configuration.md").read_text())
    sections = {key[:-1] for key in documented if key.endswith(".*")}
    keys = _leaves(Settings)
    undocumented = {k for k in keys if k not in documented and not k.startswith(tuple(sections))}
    assert not undocumented
    assert {key for key in documented if not key.endswith(".*")} <= keys
    assert all(any(key.startswith(section) for key in keys) for section in sections)


def test_the_deploy_page_gives_the_promtool_commands() -> None:
    deploy = (DOCS / "deploy.md").read_text()
    for command in (
        "promtool check config deploy/prometheus/prometheus.yml",
        "promtool check rules deploy/prometheus/alerts.yml",
        "promtool test rules deploy/prometheus/alerts.test.yml",
    ):
        assert command in deploy


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings (outside code blocks)."""
    found, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^#{1,6} (.*)", line)):
            found.add(re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_every_link_of_a_page_leads_to_a_file_and_heading(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked.read_text()), f"{page.name}: {target}"


def test_the_readme_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name}" in readme, page.name
