"""Writes docs/cli.md, the command-line reference, from the argument parsers
themselves (cnnjax/cli.py's COMMANDS), so the page cannot disagree with
`cnnjax COMMAND --help`. tests/test_docs_cli.py fails when the page is stale.

  python scripts/make_cli_docs.py           # rewrite docs/cli.md
  python scripts/make_cli_docs.py --check   # exit 1 if it is stale

The page is built from the parsers' actions, not from argparse's formatted
help, whose wrapping depends on the terminal and the Python version.
"""

import argparse
import pathlib
import sys

from cnnjax import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli.md"
REGENERATE = "python scripts/make_cli_docs.py"
TAKES = {"any": "any config key", "eval": "the evaluation keys",
         "dataset": "the dataset's keys", "model": "the model's options", "none": "none"}


def _cell(text: str) -> str:
  """Text for a Markdown table cell: pipes escaped, on one line."""
  return " ".join(text.split()).replace("|", "\\|")


def _value(action: argparse.Action) -> str:
  if action.nargs == 0:
    return ""
  if action.choices is not None:
    return "`" + "`, `".join(map(str, action.choices)) + "`"
  metavar = action.metavar or action.dest.upper()
  return f"`{metavar}`" + (" ..." if action.nargs in ("+", "*") else "")


def _rows(actions: list[argparse.Action]) -> list[str]:
  rows = ["| option | value | what it does |", "| --- | --- | --- |"]
  for action in actions:
    name = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.metavar}`"
    help_text = action.help or ""
    if action.required:
      help_text = "required; " + help_text
    rows.append(f"| {name} | {_cell(_value(action))} | {_cell(help_text)} |")
  return rows


def _groups(parser: argparse.ArgumentParser) -> list[str]:
  """The parser's argument groups as tables, positional arguments first."""
  lines = []
  for group in parser._action_groups:  # argparse exposes groups only here.
    actions = [action for action in group._group_actions
               if not isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                          argparse._SubParsersAction))]
    if not actions:
      continue
    if group.title not in ("positional arguments", "options", "optional arguments"):
      lines += ["", f"*{group.title.capitalize()}*: {group.description}."]
    lines += [""] + _rows(actions)
  return lines


def render() -> str:
  """The whole page."""
  top = cli.parser()
  subparsers = next(action for action in top._actions
                    if isinstance(action, argparse._SubParsersAction))
  lines = [
      "# Command-line reference",
      "",
      "<!-- Generated from cnnjax/cli.py by `" + REGENERATE + "`; do not edit by hand. -->",
      "",
      "Every subcommand of `cnnjax` (also `python -m cnnjax`), with every option, as",
      "`cnnjax COMMAND --help` prints them. `cnnjax --version` prints the version.",
      "A mistake in a flag, a key or a value is one line on stderr and exit status 2,",
      "before JAX or TensorFlow is imported. This page is generated from the argument",
      f"parsers by `{REGENERATE}`; `tests/test_docs_cli.py` fails when it is stale.",
      "",
      "| command | what it does | `--config.KEY=VALUE` |",
      "| --- | --- | --- |",
  ]
  for name, command in cli.COMMANDS.items():
    lines.append(f"| [`{name}`](#cnnjax-{name}) | {_cell(command.help)} "
                 f"| {TAKES[command.overrides]} |")
  for name, command in cli.COMMANDS.items():
    sub = subparsers.choices[name]
    lines += ["", f"## cnnjax {name}", "", _cell(command.help[0].upper() + command.help[1:]) + ".",
              "", "```", command.usage, "```"]
    lines += _groups(sub)
    if cli.OVERRIDES_HELP[command.overrides]:
      lines += ["", _cell(cli.OVERRIDES_HELP[command.overrides])]
  return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale")
  args = parser.parse_args(argv)
  text = render()
  if args.check:
    stale = not PAGE.exists() or PAGE.read_text() != text
    if stale:
      print(f"{PAGE.relative_to(ROOT)} is stale: run `{REGENERATE}`", file=sys.stderr)
    return int(stale)
  PAGE.parent.mkdir(exist_ok=True)
  PAGE.write_text(text)
  print(f"wrote {PAGE.relative_to(ROOT)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
