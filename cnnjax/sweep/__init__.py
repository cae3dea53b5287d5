"""`cnnjax sweep`: ablations as variants x seeds of ordinary training runs.

The vocabulary an ablation file imports (`from cnnjax.sweep import Claim,
Sweep, Tuning, Variant`) and the plan live in `spec`; `results` reads runs
back, `tuning` chooses each variant's values, `intervals` computes the
confidence intervals, `summary` writes the tables and verdicts, `plot` the
curves, `stages` advances a sweep through its stages, `local` launches the
runs on this machine, and `command` is the subcommand that composes them.
"""

from cnnjax.sweep.spec import (
                               Claim,
                               Run,
                               Sweep,
                               Tuning,
                               Variant,
                               check_runs,
                               command_line_text,
                               load_sweep,
                               plan_runs,
                               plan_trials,
)

__all__ = ["Claim", "Run", "Sweep", "Tuning", "Variant", "check_runs", "command_line_text",
           "load_sweep", "plan_runs", "plan_trials"]
