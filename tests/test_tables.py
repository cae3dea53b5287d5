"""cnnjax.tables: the one renderer of every tool's tables (text, Markdown, CSV)."""

import csv
import dataclasses
import io

from helpers import markdown_rows

from cnnjax import tables

ROWS = [{"name": "conv1", "shape": (28, 28, 6), "params": 156, "ratio": 0.25, "note": None},
        {"name": "a|b", "shape": [10], "params": 1_234_567, "ratio": 12.5, "note": "x"}]


def test_text_aligns_numbers_right_with_separators_and_keeps_indentation():
  text = tables.text(ROWS, ("name", "shape", "params", "ratio", "note"), indent=[1, 0])
  heading, rule, first, second = text.splitlines()
  assert heading.split() == ["name", "shape", "params", "ratio", "note"]
  # Each column as wide as its widest cell, the heading's included, and no wider.
  assert [len(dashes) for dashes in rule.split("  ")] == [7, 7, 9, 6, 4]
  assert first.startswith("  conv1  ") and second.startswith("a|b")
  assert first.split() == ["conv1", "28x28x6", "156", "0.250"]  # None: an empty cell.
  assert second.split() == ["a|b", "10", "1,234,567", "12.500", "x"]
  # Right-aligned: the numbers end where their headings end.
  assert first.index("156") + 3 == heading.index("params") + len("params")
  assert all(line == line.rstrip() for line in text.splitlines())


def test_column_formats_missing_values_and_headings():
  columns = [tables.Column("name", "layer"), tables.Column("ratio", "%", format=".1%"),
             tables.Column("note", missing="-"),
             tables.Column("params", format=lambda value: f"{value / 1e6:.2f}M")]
  (first, second) = markdown_rows(tables.markdown(ROWS, columns))
  assert first == {"layer": "conv1", "%": "25.0%", "note": "-", "params": "0.00M"}
  assert second == {"layer": "a|b", "%": "1250.0%", "note": "x", "params": "1.23M"}


def test_markdown_escapes_pipes_and_marks_alignment():
  text = tables.markdown(ROWS, ("name", "params", tables.Column("note", align=tables.RIGHT)))
  lines = text.splitlines()
  assert lines[1].replace("-", "") == "|:|:|:|"  # left, right (a number), right (asked)
  assert lines[1].startswith("|:-") and lines[1].count("-:|") == 2
  assert "a\\|b" in lines[3] and len({len(line) for line in lines}) == 1


def test_csv_keeps_raw_values_and_reads_back():
  text = tables.as_csv(ROWS, ("name", "shape", "params", "ratio", "note"))
  rows = list(csv.DictReader(io.StringIO(text)))
  assert rows[1] == {"name": "a|b", "shape": "10", "params": "1234567", "ratio": "12.5",
                     "note": "x"}
  assert (rows[0]["shape"], rows[0]["note"]) == ("28x28x6", "")


def test_rows_may_be_dataclasses():
  @dataclasses.dataclass
  class Row:
    name: str
    params: int

  assert tables.text([Row("fc", 10_000)], ("name", "params")).splitlines()[2].split() == [
      "fc", "10,000"]
