"""Two near-identical training runs as a sweep, to time `cnnjax sweep --jobs 1`
(one run at a time on both cores) against `--jobs 2` (both at once, one core
each). ARG picks the experiment: `lenet5` (600 steps) or `resnet20` (150).

  for jobs in 2 1; do rm -rf /tmp/jobs$jobs; /usr/bin/time -f "jobs=$jobs %e s, %U+%S CPU-s" \
    cnnjax sweep --config scripts/sweep_jobs_timing.py:lenet5 --workdir /tmp/jobs$jobs \
      --seeds 1 --jobs $jobs > /dev/null; done

Measured on 2 idle cores (AMD EPYC, AVX-512), one after the other: lenet5
34.8 s with --jobs 2 against 36.8 s with --jobs 1 (48 and 49 CPU-seconds);
resnet20 103.1 s against 112.7 s (144 and 164 CPU-seconds). Two at once,
one core each, is 6-9% faster: the default, one job per core, stays.
Earlier, on the same cores shared with other work (load average 1.4 to 3.9):
lenet5 39 and 47 s against 52 and 56 s; resnet20 181 s against 185 s.
"""

import pathlib

from cnnjax import config as config_lib
from cnnjax.sweep.spec import Sweep, Variant

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
STEPS = {"lenet5": 600, "resnet20": 150}


def get_config(arg="lenet5"):
  config = config_lib.load(str(EXPERIMENTS / f"{arg}_digits.py"))
  config.num_train_steps = STEPS[arg]
  config.log_every_steps = 50
  config.eval_every_steps = config.num_train_steps
  config.checkpoint_every_steps = config.num_train_steps
  return config


def get_sweep(arg="lenet5"):
  del arg
  # Two runs of the same cost: only the momentum differs.
  return Sweep([Variant("a", {"optimizer.momentum": 0.9}),
                Variant("b", {"optimizer.momentum": 0.8})])
