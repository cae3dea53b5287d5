"""Tables, rendered one way for every tool: rows of plain dicts (or
dataclasses) in; an aligned text table, a Markdown table or CSV out, from the
same rows (as clu's parameter_overview and torchinfo separate rows from
rendering). JSON is `json.dumps` of the same rows, or `as_json` for a list with
one row per line.

The layout is tabulate's ("plain" with a rule under the headings for text,
"pipe" for Markdown); the cells are formatted here, column by column, so
every tool's numbers read alike: an integer with thousands separators, a
float to three decimals unless its column says otherwise, a shape or per-axis
pair joined by x, a missing value empty (or as its column says). Importing
this module imports neither JAX nor TensorFlow.
"""

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence

import tabulate

LEFT, RIGHT = "left", "right"


@dataclasses.dataclass(frozen=True)
class Column:
  """One column: the row key it shows, its heading, how its values read.

  `format` is a format spec for numbers (`",.1f"`, `".3g"`) or a function of
  the value returning its text; `missing` is what None reads as; `align` is
  `"left"` or `"right"` (numbers are right-aligned by default).
  """

  key: str
  heading: str | None = None
  format: str | Callable[[object], str] | None = None
  missing: str = ""
  align: str | None = None

  @property
  def title(self) -> str:
    return self.key if self.heading is None else self.heading


ColumnLike = str | Column


def _columns(columns: Iterable[ColumnLike]) -> list[Column]:
  return [column if isinstance(column, Column) else Column(column) for column in columns]


def _value(row, key: str):
  return row[key] if isinstance(row, Mapping) else getattr(row, key)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def cell(value, column: Column) -> str:
  """`value` as a table shows it (see the module docstring)."""
  if value is None:
    return column.missing
  if callable(column.format):
    return column.format(value)
  if _is_number(value):
    spec = column.format if column.format is not None else (
        "," if isinstance(value, int) else ",.3f")
    return format(value, spec)
  if isinstance(value, (list, tuple)):
    return "x".join(str(part) for part in value)
  return str(value)


def _align(column: Column, rows: Sequence) -> str:
  if column.align is not None:
    return column.align
  values = [_value(row, column.key) for row in rows]
  present = [value for value in values if value is not None]
  return RIGHT if present and all(_is_number(value) for value in present) else LEFT


def _cells(rows: Sequence, columns: list[Column]) -> list[list[str]]:
  return [[cell(_value(row, column.key), column) for column in columns] for row in rows]


def text(rows: Sequence, columns: Iterable[ColumnLike], indent: Sequence[int] | None = None) -> str:
  """An aligned plain-text table: the headings, a rule under each, the rows;
  columns two spaces apart. `indent[i]` levels of two spaces go before row
  i's first cell (a layer's depth in its block)."""
  columns = _columns(columns)
  cells = [[column.title for column in columns], *_cells(rows, columns)]
  for line, depth in zip(cells[1:], indent or ()):
    line[0] = "  " * depth + line[0]
  # The headings as the first row: tabulate's own headings would be two
  # characters wider than the widest cell of their column.
  heading, *body = tabulate.tabulate(
      cells, tablefmt="plain", colalign=[_align(c, rows) for c in columns],
      disable_numparse=True, preserve_whitespace=True).splitlines()
  rule = "  ".join("-" * max(len(line[i]) for line in cells) for i in range(len(columns)))
  return "\n".join(line.rstrip() for line in (heading, rule, *body)) + "\n"


def markdown(rows: Sequence, columns: Iterable[ColumnLike]) -> str:
  """A Markdown (GitHub pipe) table, columns padded to line up in a terminal
  too; a `|` inside a cell is escaped."""
  columns = _columns(columns)
  cells = [[value.replace("|", "\\|") for value in line] for line in _cells(rows, columns)]
  return tabulate.tabulate(cells, headers=[column.title for column in columns],
                           tablefmt="pipe", colalign=[_align(c, rows) for c in columns],
                           disable_numparse=True, preserve_whitespace=True) + "\n"


def as_csv(rows: Sequence, columns: Iterable[ColumnLike]) -> str:
  """CSV with a header of the column keys: raw values (no thousands
  separators or rounding), None empty, shapes joined by x."""
  keys = [column.key for column in _columns(columns)]
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(keys)
  for row in rows:
    values = (_value(row, key) for key in keys)
    writer.writerow(["" if value is None else
                     "x".join(map(str, value)) if isinstance(value, (list, tuple)) else value
                     for value in values])
  return out.getvalue()


def as_json(rows: Sequence[Mapping]) -> str:
  """A JSON list, one row object per line."""
  return "[\n" + ",\n".join(f"  {json.dumps(dict(row))}" for row in rows) + "\n]\n"
