"""The documentation as the docs tests read it: README.md and docs/*.md,
their fenced code blocks and their inline code, with line numbers."""

import dataclasses
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)\s*(\w*)")
OUTPUT = "text"  # A block fenced as ```text shows what a command printed: no commands in it.
CI_RUN = "<!-- ci: run -->"


def pages() -> list[pathlib.Path]:
  return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def name(page: pathlib.Path) -> str:
  return str(page.relative_to(ROOT))


@dataclasses.dataclass(frozen=True)
class Block:
  """A fenced code block: its lines (with their numbers in the page),
  whether the line before its fence marks it to be run by CI, and whether it
  is output (fenced as ```text) rather than commands."""
  page: pathlib.Path
  lines: tuple[tuple[int, str], ...]
  run_by_ci: bool
  output: bool = False


def code_blocks(page: pathlib.Path) -> list[Block]:
  blocks, current, marked, output, previous = [], None, False, False, ""
  for number, line in enumerate(page.read_text().splitlines(), 1):
    if fence := FENCE.match(line):
      if current is None:
        current, marked, output = [], previous.strip() == CI_RUN, fence.group(2) == OUTPUT
      else:
        blocks.append(Block(page, tuple(current), marked, output))
        current = None
    elif current is not None:
      current.append((number, line))
    previous = line
  return blocks


def prose_lines(page: pathlib.Path) -> list[tuple[int, str]]:
  """The lines outside fenced code blocks."""
  inside, lines = False, []
  for number, line in enumerate(page.read_text().splitlines(), 1):
    if FENCE.match(line):
      inside = not inside
    elif not inside:
      lines.append((number, line))
  return lines


def shell_lines(block: Block) -> list[tuple[int, str]]:
  """A block's logical shell lines: `$ ` prompts removed, lines ending in a
  backslash joined with the next; numbered by their first line."""
  joined, start, parts = [], None, []
  for number, line in block.lines:
    text = line[2:] if line.startswith("$ ") else line
    if start is None:
      start = number
    if text.rstrip().endswith("\\"):
      parts.append(text.rstrip()[:-1])
      continue
    joined.append((start, " ".join(parts + [text]).strip()))
    start, parts = None, []
  if parts:
    joined.append((start, " ".join(parts).strip()))
  return joined
