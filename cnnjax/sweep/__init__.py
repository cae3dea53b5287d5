"""`cnnjax sweep`: ablations as variants x seeds of ordinary training runs.

The vocabulary an ablation file imports (`from cnnjax.sweep import Claim,
Sweep, Variant`) lives in `spec`; `local` launches the runs, `summary`
writes the tables and verdicts, `plot` the curves and `command` is the
subcommand that composes them.
"""

from cnnjax.sweep.spec import (
                               Claim,
                               Run,
                               Sweep,
                               Variant,
                               check_runs,
                               command_line_text,
                               load_sweep,
                               plan_runs,
)

__all__ = ["Claim", "Run", "Sweep", "Variant", "check_runs", "command_line_text", "load_sweep",
           "plan_runs"]
