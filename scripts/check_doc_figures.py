"""Finds a measured figure given two different values on two pages: the same
model's or experiment's error, images/s or time stated one way in one place
and another way in another (how documentation drifts).

  python scripts/check_doc_figures.py    # exit 1 and one line per conflict

Pages: README.md, docs/*.md and the docstrings of experiments/ (which state
what each experiment should reach; their indented plain-text tables are read
as tables). Fenced code blocks (commands, printed output) are skipped.

How: every table row and every clause of prose (sentences split at ". " and
"; ") is a unit. A unit's subjects are the experiment files (`NAME.py`, with
its `:ARG`) and registered model names it mentions (also as the papers
write them: ResNet-50, VGG-19, DenseNet-121, LeNet-5); a table row's
subject is its first cell's. Its figures are numbers with a unit that say
which quantity they are: `N%` beside the word "error" (or in a column whose
title says error), `N images/s` (or in an images/s column), and times
(`N s`, `N min`, `N ms`), called "compile time" where the words before
say compiling. Each figure belongs to the nearest subject named before it
in its unit (in a table row: the row's). A (subject, quantity) pair found
on two pages conflicts when neither page's values are all among the
other's: a page may repeat a figure, never contradict one.

Limits: it knows only the quantities and spellings above; it cannot tell
two conditions apart (ResNet-18's images/s on two machines on two pages is
a conflict: put both on one page, with their machines); a figure whose
subject is only implied by the surrounding text ("it trains in 3 min") has
no subject and is not checked; within one page nothing is compared.
"""

import ast
import dataclasses
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE_FENCE = re.compile(r"^\s*(```|~~~)")
EXPERIMENT = re.compile(r"\b([a-z0-9_]+)\.py(:[a-z0-9_,]+)?")
# The papers' spellings: "ResNet-50" is resnet50, "VGG-19" vgg19, "LeNet-5" lenet5.
HYPHENATED = re.compile(r"\b(resnet|vgg|densenet|lenet|plain)-(\d+)\b", re.IGNORECASE)
NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
# "1 min 53 s" is one figure; in "55.7 ± 0.9%" the figure is 55.7.
FIGURE = re.compile(r"(?:(\d+) min )?" + NUMBER + r"(?:\s*±\s*[\d.]+)?"
                    r"\s*(%|images/s\b|ms\b|s\b|min\b|minutes\b|seconds\b)")
UNIT_QUANTITY = {"%": "error %", "images/s": "images/s", "ms": "step time", "s": "time",
                 "min": "time", "minutes": "time", "seconds": "time"}
COLUMN_QUANTITY = (("images/s", "images/s"), ("ms/step", "step time"),
                   ("compile s", "compile time"))
TO_SECONDS = {"ms": 1e-3, "s": 1.0, "seconds": 1.0, "min": 60.0, "minutes": 60.0}


@dataclasses.dataclass(frozen=True)
class Figure:
  subject: str
  quantity: str
  value: float
  tolerance: float  # Half a unit of its last digit: "17.6 min" is 1056 ± 3 s.
  page: str
  line: int

  def matches(self, other: "Figure") -> bool:
    return abs(self.value - other.value) <= max(self.tolerance, other.tolerance) * (1 + 1e-9)


def model_names() -> set[str]:
  """The registry's names (cnnjax.models imports no JAX for them)."""
  from cnnjax import models

  return set(models.NAMES)


def pages() -> dict[str, str]:
  """Each page's path (relative) and its text; experiments' docstrings as pages."""
  found = {str(path.relative_to(ROOT)): path.read_text()
           for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
  for path in sorted((ROOT / "experiments").rglob("*.py")):
    docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    if docstring:
      found[str(path.relative_to(ROOT))] = docstring
  return found


def _units(text: str, plain_tables: bool = False):
  """(line number, text, header cells or None) for each table row and clause.
  With `plain_tables` (docstrings), indented lines whose columns are set
  apart by runs of spaces are table rows too, the first of a run the header."""
  in_code, header, paragraph = False, None, []
  lines = text.splitlines()

  def flush():
    if paragraph:
      start, joined = paragraph[0][0], " ".join(part for _, part in paragraph)
      for clause in re.split(r"(?<=[.;:])\s+(?=[A-Z(`*])|;\s+", joined):
        yield start, clause, None
      paragraph.clear()

  for number, line in enumerate(lines, 1):
    if CODE_FENCE.match(line):
      yield from flush()
      in_code = not in_code
      continue
    if in_code:
      continue
    if line.lstrip().startswith("|"):
      yield from flush()
      cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
      if all(re.fullmatch(r":?-+:?", cell) for cell in cells if cell):
        continue
      if header is None:
        header = cells
        continue
      yield number, cells, header
      continue
    columns = len(re.findall(r"\S\s{2,}(?=\S)", line))
    if plain_tables and re.match(r"\s{2,}\S", line) and columns >= 2:
      yield from flush()
      cells = re.split(r"\s{2,}", line.strip())
      if header is None:
        header = cells
      else:
        yield number, cells, header
      continue
    header = None
    if not line.strip() or re.match(r"\s*([-*]|\d+\.) ", line):  # A blank line or an item.
      yield from flush()
    if line.strip():
      paragraph.append((number, line.strip()))
  yield from flush()


def _subjects(text: str, models: set[str]) -> list[tuple[int, str]]:
  """(position, subject) of every experiment file and model named in `text`."""
  found = [(match.start(), f"{match.group(1)}.py{match.group(2) or ''}")
           for match in EXPERIMENT.finditer(text)]
  normal = HYPHENATED.sub(lambda match: (match.group(1) + match.group(2)).lower(), text)
  for match in re.finditer(r"`?\b([a-z][a-z0-9_]*)\b`?", normal.lower()):
    if match.group(1) in models and not normal[match.end():].startswith(".py"):
      found.append((match.start(), match.group(1)))
  return sorted(found)


def _quantity(unit: str, before: str, after: str) -> str | None:
  """The quantity of a figure with `unit`, from the words around it."""
  quantity = UNIT_QUANTITY[unit]
  if quantity == "error %":
    return quantity if "error" in (before[-60:] + after[:25]).lower() else None
  if quantity == "time" and re.search(r"compil\w*\W+(\w+\W+){0,3}$", before[-60:].lower()):
    return "compile time"
  return quantity


def _value(minutes: str | None, number: str, unit: str) -> tuple[float, float]:
  """A figure's value in its quantity's unit (times in seconds) and its tolerance."""
  digits = number.replace(",", "")
  scale = TO_SECONDS.get(unit, 1.0)
  decimals = len(digits.partition(".")[2])
  value = float(digits) * scale + (60 * int(minutes) if minutes else 0)
  return value, 0.5 * 10 ** -decimals * scale


def figures(page: str, text: str, models: set[str]) -> list[Figure]:
  """The figures of one page. In an experiment's docstring every figure is
  that experiment's, unless a clause names another experiment file."""
  found = []
  own = f"{pathlib.Path(page).name}" if page.startswith("experiments/") else None
  for line, unit, header in _units(text, plain_tables=own is not None):
    if header is None:  # A clause: each figure to the subject named last before it.
      subjects = _subjects(unit, set() if own else models) or ([(-1, own)] if own else [])
      for match in FIGURE.finditer(unit):
        named = [subject for position, subject in subjects if position < match.start()]
        quantity = _quantity(match.group(3), unit[:match.start()], unit[match.end():])
        if named and quantity:
          found.append(Figure(named[-1], quantity, *_value(*match.groups()), page, line))
      continue
    # A row is its label's: the experiment file it names, else its first model.
    named = _subjects(unit[0], set() if own else models) if unit else []
    subjects = ([s for s in named if s[1].endswith(".py") or ".py:" in s[1]] or named)[:1]
    if own and not subjects:
      subjects = [(-1, own)]
    for cell, title in zip(unit[1:], header[1:]) if subjects else ():
      for match in FIGURE.finditer(cell):
        quantity = _quantity(match.group(3), title + " " + cell[:match.start()],
                             cell[match.end():])
        if quantity:
          found.append(Figure(subjects[0][1], quantity, *_value(*match.groups()), page, line))
      # A column whose title gives the unit: its plain numbers are of that quantity.
      quantity = next((quantity for words, quantity in COLUMN_QUANTITY if words in title), None)
      if quantity and not FIGURE.search(cell):
        for number in re.findall(NUMBER + r"(?![\d.%])", cell):
          found.append(Figure(subjects[0][1], quantity, *_value(None, number, ""), page, line))
  return found


def _among(some: list[Figure], others: list[Figure]) -> bool:
  """Whether each of `some` is one of `others`, to the precision either is given to."""
  return all(any(figure.matches(other) for other in others) for figure in some)


def conflicts(found: list[Figure]) -> list[str]:
  """One line per (subject, quantity) whose pages disagree."""
  by_key: dict[tuple[str, str], dict[str, list[Figure]]] = {}
  for figure in found:
    by_key.setdefault((figure.subject, figure.quantity), {}).setdefault(figure.page, []).append(
        figure)
  lines = []
  for (subject, quantity), on_pages in sorted(by_key.items()):
    names = sorted(on_pages)
    for i, first in enumerate(names):
      for second in names[i + 1:]:
        if not (_among(on_pages[first], on_pages[second])
                or _among(on_pages[second], on_pages[first])):
          where = "; ".join(
              f"{page}:{on_pages[page][0].line} has "
              + ", ".join(f"{value:g}" for value in sorted({f.value for f in on_pages[page]}))
              for page in (first, second))
          lines.append(f"{subject} {quantity}: {where} (give it once and link to it)")
  return lines


def main() -> int:
  models = model_names()
  found = [figure for page, text in pages().items() for figure in figures(page, text, models)]
  problems = conflicts(found)
  for problem in problems:
    print(problem, file=sys.stderr)
  if not problems:
    print(f"{len(found)} figures on {len({f.page for f in found})} pages agree")
  return int(bool(problems))


if __name__ == "__main__":
  sys.exit(main())
