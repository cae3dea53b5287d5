"""Reading what a run wrote, for the tools that read workdirs (sweep, report,
plot): `metrics.jsonl`'s records and the numbers in them. Imports nothing
heavy, so the tools answer at once."""

import json
import math
import pathlib

METRICS_FILE = "metrics.jsonl"


def finite_number(value) -> float | None:
  """A metric as cnnjax.workdir.metrics writes it: a number, or "nan"/"inf" as
  a string (None for those and for anything that is not a number)."""
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return value if math.isfinite(value) else None


def read_records(path: pathlib.Path, missing_ok: bool = False) -> list[dict]:
  """The complete records of a `metrics.jsonl`, in logged order: JSON objects
  with an integer `step`. A torn line (a writer killed, or still writing) is
  skipped. An unreadable file raises OSError, or gives [] with `missing_ok`."""
  try:
    lines = path.read_text().splitlines()
  except OSError:
    if missing_ok:
      return []
    raise
  records = []
  for line in lines:
    try:
      record = json.loads(line)
    except ValueError:
      continue
    if isinstance(record, dict) and isinstance(record.get("step"), int):
      records.append(record)
  return records
