"""Writes the measured tables of the documentation from their JSON files, so
a figure is refreshed by a command, never retyped.

Each docs/data/NAME.json holds one table: its columns (key, title, format),
its rows and how it was measured (command, machine, versions, date). A page
shows it between two marker comments, which this script rewrites:

  <!-- table: NAME (docs/data/NAME.json; python scripts/render_docs_tables.py) -->
  ...
  <!-- /table: NAME -->

  python scripts/render_docs_tables.py           # rewrite every table in README.md and docs/
  python scripts/render_docs_tables.py --check   # exit 1 if a table differs from its JSON
  python scripts/render_docs_tables.py --rows NAME FILE   # replace NAME's rows with FILE's
                                                          # JSON list, e.g. `cnnjax models
                                                          # --format json` or `cnnjax bench
                                                          # --format json` output; then rewrite

A column's "format" is a Python format string applied to the cell's value
(after multiplying it by the column's "scale", if any), "code" (the value in
backticks), "duration" (seconds as "N s" or "N min") or a template with
named fields for a cell that is an object ("{cnnjax:,g} / {pytorch:,g}") or
for a column whose "key" is a list of the row's keys (when the row lacks one
of them, its first key's value is formatted with "alone", if given); a list
is formatted item by item and joined with ", ", or as a whole by a template
of positional fields ("{0:g} / {1:g}"); null is an empty cell.
tests/test_docs_tables.py fails when a page's table and its JSON disagree.
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
REGENERATE = "python scripts/render_docs_tables.py"
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+)[^>]*-->\n)(?P<body>.*?)"
                   r"(<!-- /table: (?P=name) -->)", re.DOTALL)
MEASURED = ("command", "machine", "versions", "date")  # Every table says all four.


def pages() -> list[pathlib.Path]:
  return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _cell(value, column: dict) -> str:
  if value is None:
    return ""
  style = column.get("format", "{}")
  if isinstance(value, list) and "{0" in style:  # A template of the list's items.
    return style.format(*value).replace("|", "\\|")
  if isinstance(value, list):
    return ", ".join(_cell(item, column) for item in value)
  if isinstance(value, dict):
    text = style.format(**value)
  else:
    if isinstance(column["key"], list):
      style = column.get("alone", "{}")
    if "scale" in column:
      value = value * column["scale"]
    if style == "code":
      text = f"`{value}`"
    elif style == "duration":
      text = f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"
    else:
      text = style.format(value)
  return text.replace("|", "\\|")


def _value(row: dict, column: dict):
  """The cell's value: the row's `key`, or for a list of keys an object of
  those the row has (None if it has none)."""
  if isinstance(column["key"], list):
    values = {key: row[key] for key in column["key"] if row.get(key) is not None}
    return values if len(values) == len(column["key"]) else values.get(column["key"][0])
  return row.get(column["key"])


def _measured(measured: dict) -> str:
  """The sentence saying how a table was measured."""
  missing = [field for field in MEASURED if not measured.get(field)]
  if missing:
    raise SystemExit(f"a table's \"measured\" lacks {', '.join(missing)}")
  commands = " and ".join(f"`{command}`" for command in measured["command"])
  extra = "".join(f", {field} {measured[field]}" for field in ("commit", "load")
                  if measured.get(field))
  return (f"Measured with {commands} on {measured['machine']}; {measured['versions']}; "
          f"{measured['date']}{extra}.")


def render_table(table: dict) -> str:
  """The Markdown of one table: header, rows, and how it was measured."""
  columns = table["columns"]
  lines = ["| " + " | ".join(column["title"] for column in columns) + " |",
           "| " + " | ".join("---:" if column.get("align") == "right" else "---"
                             for column in columns) + " |"]
  for row in table["rows"]:
    lines.append("| " + " | ".join(_cell(_value(row, column), column) for column in columns)
                 + " |")
  lines += ["", _measured(table["measured"])]
  if table.get("note"):
    lines += ["", table["note"]]
  return "\n".join(lines) + "\n"


def load(name: str) -> dict:
  path = DATA / f"{name}.json"
  if not path.exists():
    raise SystemExit(f"{path.relative_to(ROOT)} does not exist (a page names table {name!r})")
  return json.loads(path.read_text())


def rendered(text: str) -> str:
  """`text` (a page) with every marked table rewritten from its JSON."""
  return BLOCK.sub(lambda match: match.group(1) + render_table(load(match.group("name")))
                   + match.group(4), text)


def stale_pages() -> list[pathlib.Path]:
  return [page for page in pages() if rendered(page.read_text()) != page.read_text()]


def tables_in_pages() -> dict[str, list[pathlib.Path]]:
  """Each table name with the pages that show it."""
  found: dict[str, list[pathlib.Path]] = {}
  for page in pages():
    for match in BLOCK.finditer(page.read_text()):
      found.setdefault(match.group("name"), []).append(page)
  return found


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="exit 1 if a table is stale")
  parser.add_argument("--rows", nargs=2, metavar=("NAME", "FILE"),
                      help="replace docs/data/NAME.json's rows with FILE's JSON list first")
  args = parser.parse_args(argv)
  if args.rows:
    name, source = args.rows
    table = load(name)
    table["rows"] = json.loads(pathlib.Path(source).read_text())
    (DATA / f"{name}.json").write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    print(f"rows of docs/data/{name}.json replaced; update its \"measured\" conditions too")
  stale = stale_pages()
  if args.check:
    for page in stale:
      print(f"{page.relative_to(ROOT)}: a table differs from its docs/data JSON: run "
            f"`{REGENERATE}`", file=sys.stderr)
    return int(bool(stale))
  for page in stale:
    page.write_text(rendered(page.read_text()))
    print(f"rewrote the tables of {page.relative_to(ROOT)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
