"""No measured figure has two values on two pages (scripts/check_doc_figures.py
says how it decides), and the check finds a conflict when there is one."""

import pytest
from helpers import script

TABLE = "| experiment | test error |\n| --- | ---: |\n| `lenet5_shapes.py` | 23.75% |\n"


@pytest.fixture(scope="module")
def check():
  return script("check_doc_figures")


def test_no_figure_has_two_values_on_two_pages(check):
  models = check.model_names()
  found = [figure for page, text in check.pages().items()
           for figure in check.figures(page, text, models)]
  assert len(found) > 100  # It reads the pages' figures at all.
  assert check.conflicts(found) == []


@pytest.mark.parametrize("first, second, conflict", [
    ("`lenet5_shapes.py` reaches 23.4% test error.", TABLE, True),
    ("`lenet5_shapes.py` reaches 23.75% test error.", TABLE, False),
    ("ResNet-18 trains at 477.1 images/s here.", "`resnet18`: 605.3 images/s there.", True),
    ("The sweep took 17.6 min (`relu_vs_tanh.py`).", "`relu_vs_tanh.py` took 17 min 37 s.",
     False),  # The same time, given to another precision.
    ("ResNet-50 reaches 22.85% top-1 error.", "ResNet-50 trains at 6,712 images/s.", False),
])
def test_two_pages_disagreeing_is_a_conflict(check, first, second, conflict):
  models = check.model_names()
  found = check.figures("a.md", first, models) + check.figures("b.md", second, models)
  assert found, "no figure read"
  assert bool(check.conflicts(found)) == conflict
