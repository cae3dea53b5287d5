"""Rows of dicts as an aligned text table, JSON or CSV: one set of rows, three
renderings (as clu's parameter_overview and torchinfo separate them)."""

import csv
import io
import json


def cell(value) -> str:
  """A value as the text table and CSV show it: shapes and per-axis pairs
  joined by x, integers with thousands separators (text table only)."""
  if isinstance(value, (list, tuple)):
    return "x".join(str(part) for part in value)
  if value is None:
    return ""
  return str(value)


def table(rows: list[dict], columns: tuple[str, ...], numbers: frozenset = frozenset(),
          indent: list[int] | None = None) -> str:
  """An aligned text table; `numbers` columns right-aligned with thousands
  separators, `indent[i]` levels of two spaces before row i's first cell."""
  def text(row, column, index):
    value = row[column]
    if column in numbers and isinstance(value, int):
      shown = f"{value:,}"
    elif column in numbers and isinstance(value, float):
      shown = f"{value:,.3f}"
    else:
      shown = cell(value)
    if column == columns[0] and indent:
      shown = "  " * indent[index] + shown
    return shown

  cells = [[text(row, column, index) for column in columns] for index, row in enumerate(rows)]
  widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
  def line(values):
    return "  ".join(value.rjust(width) if column in numbers else value.ljust(width)
                     for value, width, column in zip(values, widths, columns)).rstrip()
  return "\n".join([line(columns), line(["-" * width for width in widths])] +
                   [line(values) for values in cells]) + "\n"


def as_json(rows: list[dict]) -> str:
  """A JSON list, one row object per line."""
  return "[\n" + ",\n".join(f"  {json.dumps(row)}" for row in rows) + "\n]\n"


def as_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
  writer.writeheader()
  for row in rows:
    writer.writerow({column: cell(row[column]) for column in columns})
  return out.getvalue()
