"""Runs the documentation's code blocks marked `<!-- ci: run -->` end to end,
as a user would paste them, in a fresh copy of the repository.

  python scripts/run_doc_commands.py          # every marked block, in order
  python scripts/run_doc_commands.py --list   # which blocks those are

A block is marked by the line `<!-- ci: run -->` just before its opening
fence. Blocks run in page order, README.md first, then docs/*.md by name,
each as a bash script (`set -euo pipefail`) in the same copy, so a later
block may use what an earlier one made (docs/getting-started.md evaluates
the run the README's first command trains). The copy holds the files git
tracks or would track (no runs/, no virtual environment). .ci/run calls
this after the tests; mark only commands that take a minute or two.
"""

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARK = "<!-- ci: run -->"
FENCE = re.compile(r"^\s*(```|~~~)")


def marked_blocks() -> list[tuple[str, int, str]]:
  """(page, line of the fence, the block's text) for each marked block."""
  found = []
  for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
    lines = page.read_text().splitlines()
    for number, line in enumerate(lines):
      if line.strip() == MARK and number + 1 < len(lines) and FENCE.match(lines[number + 1]):
        end = next(i for i in range(number + 2, len(lines)) if FENCE.match(lines[i]))
        found.append((str(page.relative_to(ROOT)), number + 2,
                      "\n".join(lines[number + 2:end]) + "\n"))
  return found


def _copy_repository(destination: pathlib.Path) -> None:
  listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
  for name in filter(None, listed):
    source = ROOT / name.decode()
    if source.is_file():
      target = destination / name.decode()
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, target)


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--list", action="store_true", help="list the marked blocks and exit")
  args = parser.parse_args(argv)
  blocks = marked_blocks()
  if args.list or not blocks:
    for page, line, text in blocks:
      print(f"{page}:{line}\n{text}")
    return 0 if blocks else 1
  with tempfile.TemporaryDirectory(prefix="cnnjax-doc-commands-") as directory:
    copy = pathlib.Path(directory)
    _copy_repository(copy)
    for page, line, text in blocks:
      print(f"== {page}:{line}\n{text}", flush=True)
      started = time.monotonic()
      done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + text], cwd=copy)
      if done.returncode:
        print(f"FAILED ({done.returncode}): the block at {page}:{line}", file=sys.stderr)
        return 1
      print(f"== {page}:{line}: done in {time.monotonic() - started:.0f} s", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
