"""The one exception a user can cause, and the lookup of a named config choice.

Raised at the edges (config, CLI, dataset lookup, model options) with a message
that names the problem and what to do; the CLI prints it on one line and exits
with status 2. The core trusts its inputs and never raises it.
"""


class UserError(ValueError):
  """A mistake in what the user asked for, not a bug in cnnjax."""


def choose(table: dict, key: str, name: str):
  """`table[name]` for the config value `key` (e.g. "model.activation"), or a
  UserError naming the key and its choices."""
  if name not in table:
    option = key.rpartition(".")[2]
    raise UserError(f"unknown {option} {name!r}; choose one of: {', '.join(sorted(table))} "
                    f"(config.{key})")
  return table[name]
