"""The one exception a user can cause.

Raised at the edges (config, CLI, dataset lookup, model options) with a message
that names the problem and what to do; the CLI prints it on one line and exits
with status 2. The core trusts its inputs and never raises it.
"""


class UserError(ValueError):
  """A mistake in what the user asked for, not a bug in cnnjax."""
