"""docs/cli.md is what scripts/make_cli_docs.py makes of today's parsers, and
every option of every subcommand says what it does."""

import argparse

import doc_pages
from helpers import script

from cnnjax import cli


def test_cli_reference_is_up_to_date():
  make_cli_docs = script("make_cli_docs")
  page = doc_pages.ROOT / "docs" / "cli.md"
  assert page.read_text() == make_cli_docs.render(), (
      f"docs/cli.md is stale: run `{make_cli_docs.REGENERATE}`")


def test_cli_reference_lists_every_subcommand_and_option():
  text = (doc_pages.ROOT / "docs" / "cli.md").read_text()
  top = cli.parser()
  commands = next(action for action in top._actions
                  if isinstance(action, argparse._SubParsersAction)).choices
  for name, sub in commands.items():
    assert f"## cnnjax {name}\n" in text
    for action in sub._actions:
      for flag in action.option_strings:
        assert flag == "-h" or flag == "--help" or f"`{flag}`" in text, (name, flag)


def test_every_option_has_help():
  top = cli.parser()
  commands = next(action for action in top._actions
                  if isinstance(action, argparse._SubParsersAction)).choices
  missing = [f"{name} {action.option_strings or action.dest}"
             for name, sub in commands.items() for action in sub._actions if not action.help]
  assert missing == []
