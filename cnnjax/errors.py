"""The exceptions that end a command with a status, and the lookup of a named
config choice.

`UserError` is the one exception a user can cause. It is raised at the edges
(config, CLI, dataset lookup, model options) with a message that names the
problem and what to do; the CLI prints it on one line and exits with status 2.
The core trusts its inputs and never raises it.
"""


# Exit statuses a script or scheduler acts on (cnnjax.training.stopping says
# when each is used): a user error changed nothing; a preempted or
# interrupted run saved its step and resumes when run again.
USAGE_ERROR_STATUS = 2
DIVERGED_STATUS = 3
PREEMPTED_STATUS = 75
INTERRUPTED_STATUS = 130


class UserError(ValueError):
  """A mistake in what the user asked for, not a bug in cnnjax."""


class StopRun(Exception):
  """A run stopped early; the CLI prints the message and exits with
  `exit_status`. The reasons and their statuses are in
  cnnjax.training.stopping; the workdir's checkpoints raise one of their own
  (`CheckpointFailed`), which is why it lives at the bottom of the package."""

  exit_status = 1


def choose(table: dict, key: str, name: str):
  """`table[name]` for the config value `key` (e.g. "model.activation"), or a
  UserError naming the key and its choices."""
  if name not in table:
    option = key.rpartition(".")[2]
    raise UserError(f"unknown {option} {name!r}; choose one of: {', '.join(sorted(table))} "
                    f"(config.{key})")
  return table[name]
