"""Every relative link in README.md and docs/ points at a file of the
repository, and at a heading of it where the link names one (as the
repository host makes anchors: lower case, punctuation dropped, spaces as
hyphens, "-1" for a repeated heading); every docs page is in the README's
table of pages."""

import re

import doc_pages
import pytest

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def anchors(page) -> set[str]:
  """The anchors the repository host gives the headings of a Markdown page."""
  seen: dict[str, int] = {}
  found = set()
  for _, line in doc_pages.prose_lines(page):
    match = HEADING.match(line)
    if not match:
      continue
    slug = re.sub(r"[^\w\- ]", "", match.group(2).lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    found.add(slug if count == 0 else f"{slug}-{count}")
  return found


def _links():
  found = []
  for page in doc_pages.pages():
    for number, line in doc_pages.prose_lines(page):
      for match in LINK.finditer(line):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):  # https:, mailto:
          continue
        found.append(pytest.param(page, target, id=f"{doc_pages.name(page)}:{number}:{target}"))
  return found


@pytest.mark.parametrize("page, target", _links())
def test_relative_link_resolves(page, target):
  path, _, anchor = target.partition("#")
  file = (page.parent / path).resolve() if path else page
  assert file.exists(), f"{doc_pages.name(page)} links to {target}: no such file"
  assert doc_pages.ROOT in file.parents or file == doc_pages.ROOT, (
      f"{doc_pages.name(page)} links to {target}, outside the repository")
  if anchor and file.suffix == ".md":
    assert anchor in anchors(file), (
        f"{doc_pages.name(page)} links to {target}: {file.name} has no heading with that "
        f"anchor; it has {', '.join(sorted(anchors(file)))}")


def test_every_docs_page_is_in_the_readme_table():
  readme = (doc_pages.ROOT / "README.md").read_text()
  for page in doc_pages.pages()[1:]:
    assert f"]({doc_pages.name(page)})" in readme, f"README.md does not list {doc_pages.name(page)}"


def test_links_are_found():
  assert len(_links()) >= 30
