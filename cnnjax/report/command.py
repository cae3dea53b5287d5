"""`cnnjax report`'s flags and what runs: the runs beside the papers
(cnnjax.report.compare) or, with --claims, every sweep's claims
(cnnjax.report.claims)."""

import argparse
import pathlib

from cnnjax.errors import UserError
from cnnjax.report import claims, compare


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("directories", nargs="+", type=pathlib.Path, metavar="DIR",
                      help="workdirs of `cnnjax train` runs, or sweep DIRs (each of their runs); "
                           "with --claims, sweep DIRs or directories holding them")
  parser.add_argument("--claims", action="store_true",
                      help="one row per claim of every sweep found: the paper, the claim, the "
                           "setting, the effect with its interval, the verdict, seeds, compute")
  parser.add_argument("--format", choices=compare.FORMATS, default="md",
                      help="md: a markdown table with the citations as footnotes (default); "
                           "csv or json: raw numbers, one row each")


def run(args: argparse.Namespace, overrides: list[tuple[str, str]]) -> int:
  if overrides:
    raise UserError("cnnjax report takes no --config overrides")
  if args.claims:
    rows = claims.claim_rows(args.directories)
    render = {"md": claims.as_markdown, "csv": claims.as_csv, "json": claims.as_json}
    print(render[args.format](rows), end="")
    return 0
  rows = compare.report_rows(args.directories)
  render = {"md": compare.as_markdown, "csv": compare.as_csv,
            "json": compare.as_json}[args.format]
  print(render(rows), end="")
  return 0
