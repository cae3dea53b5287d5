"""The measured tables of README.md and docs/ are what
scripts/render_docs_tables.py writes from docs/data/*.json; each JSON table
says how it was measured and is shown on one page; the zoo's JSON lists
the registry's models with their inputs and options."""

import json

import doc_pages
import pytest
from helpers import script

from cnnjax import models


@pytest.fixture(scope="module")
def render():
  return script("render_docs_tables")


def test_tables_match_their_json(render):
  stale = [doc_pages.name(page) for page in render.stale_pages()]
  assert stale == [], f"tables differ from docs/data in {stale}: run `{render.REGENERATE}`"


def test_every_json_table_is_shown_once_and_says_how_it_was_measured(render):
  shown = render.tables_in_pages()
  for path in sorted((doc_pages.ROOT / "docs" / "data").glob("*.json")):
    assert len(shown.get(path.stem, [])) == 1, f"{path.name} is shown on {shown.get(path.stem)}"
    measured = json.loads(path.read_text())["measured"]
    assert all(measured.get(field) for field in render.MEASURED), (path.name, measured)


def test_a_figure_edited_by_hand_is_found_and_rewritten(render):
  """The check can fail: a table edited on its page no longer renders as it stands."""
  text = (doc_pages.ROOT / "docs" / "models.md").read_text()
  edited = text.replace("| `lenet5` | 32x32x1 | 60,850 |", "| `lenet5` | 32x32x1 | 60,851 |")
  assert edited != text
  assert render.rendered(edited) != edited and render.rendered(edited) == text


def test_the_zoo_json_is_the_registry():
  rows = json.loads((doc_pages.ROOT / "docs" / "data" / "models.json").read_text())["rows"]
  assert [row["name"] for row in rows] == models.list_models()
  for row in rows:
    size = models.NATIVE_INPUT_SIZE[row["name"]]
    assert row["input"] == f"{size}x{size}x{models.NATIVE_INPUT_CHANNELS[row['name']]}"
    assert row["options"] == json.loads(json.dumps(models.model_defaults(row["name"])))
