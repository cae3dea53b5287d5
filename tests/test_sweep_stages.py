"""The sweep's stages without training: the intervals against hand-computed
cases (censored seeds included), the seeds estimate, the tuning stage's
vocabulary, choice, edge flag and resume, the state machine with a fake
launcher (one that waits, and a scheduler's that submits and returns), and
`--seeds auto` stopping on a settled claim and on the maximum. Run
workdirs are written by hand (tests/sweep_fakes.py)."""

import csv
import json
import math

import pytest
from helpers import LENET_DIGITS
from sweep_fakes import DIVERGED, FakeLauncher

from cnnjax import cli
from cnnjax.sweep import intervals, stages
from cnnjax.sweep import summary as sweep_summary
from cnnjax.sweep.spec import Tuning, load_sweep

# --- Intervals, against hand-computed cases ---------------------------------------


def _values(*values, censored=()):
  return [(value, index in censored) for index, value in enumerate(values)]


def test_welch_interval_of_a_difference_by_hand():
  """better 1, 2, 3 and worse 4, 6, 8: d = 4, s² = 1 and 4, se = sqrt(1/3 +
  4/3) = 1.29099, df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 50/17 = 2.94118,
  t(0.975, 50/17) = 3.21876: 4 ± 4.15540."""
  interval = intervals.effect_interval(_values(1, 2, 3), _values(4, 6, 8), ratio=False)
  assert interval.estimate == pytest.approx(4.0)
  assert interval.degrees_of_freedom == pytest.approx(50 / 17)
  assert (interval.low, interval.high) == (pytest.approx(-0.155400, abs=1e-6),
                                           pytest.approx(8.155400, abs=1e-6))
  assert interval.method == "Welch's t interval" and interval.level == 0.95


def test_welch_interval_of_a_ratio_is_on_the_logs_by_hand():
  """better 1, 2, 4 and worse 4, 8, 16: logs (0, 1, 2) and (2, 3, 4) times
  ln 2, so the ratio of geometric means is 2² = 4, se = ln 2 · sqrt(2/3), df
  = 4, t(0.975, 4) = 2.776445: 2^(2 ± 2.26697) = 0.83107x to 19.2523x."""
  interval = intervals.effect_interval(_values(1, 2, 4), _values(4, 8, 16), ratio=True)
  assert interval.estimate == pytest.approx(4.0)
  assert interval.degrees_of_freedom == pytest.approx(4.0)
  assert (interval.low, interval.high) == (pytest.approx(0.831070, abs=1e-6),
                                           pytest.approx(19.25229, abs=1e-5))
  assert interval.method == "Welch's t interval on log values"


def test_censored_seeds_open_their_side_of_the_interval():
  """The same seeds, with worse's 8 a seed that never reached the target in
  its 8 epochs: counted as 8, the low end stays (-0.155), the high end goes;
  a censored seed of better drops the low end; both, both ends."""
  worse_missed = intervals.effect_interval(_values(1, 2, 3), _values(4, 6, 8, censored=(2,)),
                                           ratio=False)
  assert (worse_missed.low, worse_missed.high) == (pytest.approx(-0.155400, abs=1e-6), None)
  better_missed = intervals.effect_interval(_values(1, 2, 3, censored=(0,)), _values(4, 6, 8),
                                            ratio=False)
  assert (better_missed.low, better_missed.high) == (None, pytest.approx(8.155400, abs=1e-6))
  both = intervals.effect_interval(_values(1, 2, 3, censored=(0,)),
                                   _values(4, 6, 8, censored=(2,)), ratio=False)
  assert (both.low, both.high) == (None, None)


def test_seeds_that_all_agree_give_the_point_itself():
  interval = intervals.effect_interval(_values(2, 2), _values(5, 5), ratio=False)
  assert (interval.estimate, interval.low, interval.high, interval.degrees_of_freedom) == (
      3.0, 3.0, 3.0, None)


def test_seeds_to_settle_by_hand():
  """s_b² = s_w² = 1, a gap of 1 to P = 0: the smallest n with 1 >=
  (t(0.975, 2(n-1)) + t(0.8, 2(n-1))) · sqrt(2/n): 1.0239 at n = 16, 0.9912 at 17."""
  better, worse = _values(-1, 0, 1), _values(0, 1, 2)
  assert intervals.seeds_to_settle(better, worse, False, 0.0) == (17, "")
  assert intervals.seeds_to_settle(better, worse, False, 1.0) == (None, intervals.AT_THRESHOLD)
  assert intervals.seeds_to_settle(_values(1, 1), _values(2, 2), False, 0.0) == (
      None, intervals.NO_SPREAD)
  # worse censored: only the low end can move past P, and only if the estimate is above it.
  censored = _values(0, 1, 2, censored=(2,))
  assert intervals.seeds_to_settle(better, censored, False, 0.5)[0] is not None
  assert intervals.seeds_to_settle(better, censored, False, 1.5) == (
      None, intervals.CENSORED_SIDE)
  assert intervals.seeds_to_settle(_values(-1, 0, 1, censored=(0,)), censored, False, 0.0) == (
      None, intervals.BOTH_CENSORED)


# --- The tuning stage: vocabulary ---------------------------------------------------

RATES = (0.01, 0.03, 0.1, 0.3)
TUNED = f'Tuning("epochs_to_target", grid={{"optimizer.learning_rate": {RATES!r}}})'


def _ablation(tmp_path, tuning: str = TUNED, variants: str = "", target: str = "0.5",
              claim: str = "ratio=3.0", metric: str = "epochs_to_target") -> str:
  """An ablation file: LeNet-5 on digits, relu against tanh, the given tuning."""
  variants = variants or ('[Variant("relu", {"model.activation": "relu"}), '
                          'Variant("tanh", {"model.activation": "tanh"})]')
  path = tmp_path / "ablation.py"
  path.write_text(
      "from cnnjax import config as config_lib\n"
      "from cnnjax.sweep import Claim, Sweep, Tuning, Variant\n"
      f"def get_config(arg=None):\n  return config_lib.load({LENET_DIGITS!r})\n"
      "def get_sweep(arg=None):\n"
      f"  return Sweep({variants},\n"
      f'               [Claim("relu is faster", "AlexNet §3.1", "{metric}", "relu", '
      f'"tanh", {claim})],\n'
      f"               target_train_error={target}, tuning={tuning})\n")
  return str(path)


@pytest.mark.parametrize("tuning, extra, message", [
    ('Tuning("epochs_to_target", grid={"optimizer.learnin_rate": (0.1,)})', {},
     "ablation.py: tuning: variant 'relu', trial learnin_rate=0.1: unknown config key "
     "'config.optimizer.learnin_rate'"),
    ('Tuning("epochs_to_target", grid={"optimizer.learning_rate": ()})', {},
     "ablation.py: tuning: the grid of optimizer.learning_rate (grid) is empty"),
    ('Tuning("final train/top1_error")', {}, "ablation.py: tuning: the grid is empty"),
    (TUNED, {"target": "None", "metric": "final train/top1_error"},
     "ablation.py: tuning: the metric epochs_to_target needs a target"),
    ('Tuning("train-test gap", grid={"optimizer.learning_rate": (0.1,)})', {},
     "ablation.py: tuning: unknown metric 'train-test gap'"),
    ('Tuning("epochs_to_target", variant_grids={"gelu": {"optimizer.learning_rate": (0.1,)}})',
     {}, "ablation.py: tuning: variant_grids names no variant 'gelu'"),
    (TUNED, {"variants": '[Variant("relu", {"optimizer.learning_rate": 0.1}), Variant("tanh")]'},
     "ablation.py: tuning: variant 'relu' sets optimizer.learning_rate, which its grid searches"),
    ('Tuning("epochs_to_target", grid={"optimizer.learning_rate": (0.1,)}, '
     'trial_overrides={"seed": 3})', {}, "ablation.py: tuning: trial_overrides sets seed"),
])
def test_a_mistaken_tuning_is_one_line_naming_the_file_before_anything_trains(
    tmp_path, capsys, tuning, extra, message):
  workdir = tmp_path / "sweep"
  code = cli.main(["sweep", "--config", _ablation(tmp_path, tuning, **extra),
                   "--workdir", str(workdir)])
  error = capsys.readouterr().err.strip()
  assert code == 2 and len(error.splitlines()) == 1 and error.startswith("cnnjax: error: ")
  assert message in error
  assert not workdir.exists()


def test_the_tuned_key_cannot_be_set_for_every_run(tmp_path, capsys):
  code = cli.main(["sweep", "--config", _ablation(tmp_path), "--workdir", str(tmp_path / "w"),
                   "--config.optimizer.learning_rate=0.5"])
  assert code == 2
  assert "--config.optimizer.learning_rate is what the tuning stage searches" in (
      capsys.readouterr().err)


def test_trials_are_named_by_their_values_and_never_share_a_directory():
  tuning = Tuning("final train/top1_error", grid={"optimizer.learning_rate": (0.01, 0.1),
                                                  "optimizer.momentum": (0.0, 0.9)})
  assert [name for name, _ in tuning.trials_of("any")] == [
      "learning_rate=0.01,momentum=0.0", "learning_rate=0.01,momentum=0.9",
      "learning_rate=0.1,momentum=0.0", "learning_rate=0.1,momentum=0.9"]
  assert tuning.trials_of("any")[1][1] == {"optimizer.learning_rate": 0.01,
                                           "optimizer.momentum": 0.9}
  with pytest.raises(Exception, match="would share the directory"):
    Tuning("final train/top1_error", grid={"dataset.name": ("a/b", "a_b")})


# --- The tuning stage: the choice, through the stages ---------------------------------

# relu: 0.03 and 0.1 reach 0.5 at 0.6 epochs, 0.1 ending lower (20% < 30%):
# the tie goes to 0.1; 0.3 diverges. tanh: the largest rate is fastest, an
# edge; 0.01 and 0.03 never reach the target.
TRIALS = {("relu", 0.01): (1.0, 0.3), ("relu", 0.03): (0.6, 0.3), ("relu", 0.1): (0.6, 0.2),
          ("relu", 0.3): DIVERGED, ("tanh", 0.01): (None, 0.9), ("tanh", 0.03): (None, 0.8),
          ("tanh", 0.1): (0.8, 0.4), ("tanh", 0.3): (0.4, 0.3)}
MEASURED = {"relu": (0.4, 0.6, 0.4, 0.6), "tanh": (2.8, 3.2, 3.0, 3.0)}


def _outcome(run):
  if run.trial:
    return TRIALS[run.variant, run.config.optimizer.learning_rate]
  return MEASURED[run.variant][run.seed % 4], 0.3


def _setup(tmp_path, spec, seeds=stages.Seeds(fixed=3)):
  return stages.Setup(spec, load_sweep(spec), seeds, [], tmp_path / "sweep")


def test_the_trials_run_first_then_the_seeds_with_each_variants_choice(tmp_path):
  setup = _setup(tmp_path, _ablation(tmp_path))
  launcher, said = FakeLauncher(_outcome), []
  assert stages.advance(setup, launcher, said.append) == 0
  trials, seeds = launcher.launched
  assert trials == [f"{variant} learning_rate={rate} seed 1000"
                    for variant in ("relu", "tanh") for rate in RATES]
  assert seeds == [f"{variant} seed {seed}" for seed in range(3) for variant in ("relu", "tanh")]
  assert said[0] == "tuning: 0 of 8 trials done; training 8"
  assert said[1] == "seeds 0 to 2: 0 of 6 runs already finished; training 6"
  workdir = setup.workdir
  assert (workdir / "tuning" / "tanh" / "learning_rate=0.3" / "seed1000" / "results.json").exists()
  for variant, rate in (("relu", 0.1), ("tanh", 0.3)):
    config = json.loads((workdir / variant / "seed2" / "config.json").read_text())
    assert config["optimizer"]["learning_rate"] == rate

  tuning = json.loads((workdir / "tuning.json").read_text())
  relu, tanh = tuning["choices"]["relu"], tuning["choices"]["tanh"]
  assert relu["values"] == {"optimizer.learning_rate": 0.1} and relu["at_edge"] == []
  assert relu["margin"] == 0.0 and relu["margin_text"] == (
      "tied with learning_rate=0.03 at 0.60 epochs; the lower final training top-1 error "
      "decided, 20.00% against 30.00%")
  assert tanh["values"] == {"optimizer.learning_rate": 0.3}
  assert tanh["at_edge"] == ["optimizer.learning_rate"]
  assert tanh["margin"] == pytest.approx(0.4) and tanh["margin_text"] == (
      "the runner-up, learning_rate=0.1: 0.80 epochs (+0.40 epochs)")
  assert tanh["notes"] == ["at the edge of the grid: the largest optimizer.learning_rate tried; "
                           "extend the grid"]
  with (workdir / "tuning.csv").open() as file:
    rows = {(row["variant"], row["trial"]): row for row in csv.DictReader(file)}
  assert [rows["relu", f"learning_rate={rate}"]["rank"] for rate in RATES] == ["3", "2", "1", "4"]
  assert rows["relu", "learning_rate=0.3"]["status"] == "diverged"
  assert [rows["tanh", f"learning_rate={rate}"]["target_missed"] for rate in RATES] == [
      "1", "1", "0", "0"]
  assert rows["tanh", "learning_rate=0.3"]["chosen"] == "True"

  markdown = (workdir / "summary.md").read_text()
  assert "## Tuning" in markdown and "**tanh**: optimizer.learning_rate=0.3 (0.40 epochs; " in (
      markdown)
  assert "**at the edge of the grid: the largest optimizer.learning_rate tried; extend the " \
         "grid**" in markdown
  with (workdir / "summary.csv").open() as file:
    assert [row["tuned"] for row in csv.DictReader(file)] == [
        "optimizer.learning_rate=0.1", "optimizer.learning_rate=0.3"]
  data = json.loads((workdir / "sweep.json").read_text())
  assert data["stage"] == "Stage: done, seeds 0 to 2."
  assert data["compute"]["tuning_train_time_s"] == 7 * 12.5  # The diverged trial logged none.
  assert data["claims"][0]["verdict"] == "reproduced"


def test_a_finished_tuning_stage_is_never_trained_again_and_gives_the_same_choice(tmp_path):
  setup = _setup(tmp_path, _ablation(tmp_path))
  assert stages.advance(setup, FakeLauncher(_outcome), lambda _: None) == 0
  workdir = setup.workdir
  recorded = (workdir / "tuning.json").read_text()

  again, said = FakeLauncher(_outcome), []
  assert stages.advance(_setup(tmp_path, setup.spec), again, said.append) == 0
  assert again.launched == [] and said[0] == "14 of 14 runs already finished: nothing to train"
  assert (workdir / "tuning.json").read_text() == recorded

  # A lost seed run is trained again; no trial is.
  for path in sorted((workdir / "tanh" / "seed1").rglob("*"), reverse=True):
    path.unlink() if path.is_file() else path.rmdir()
  resumed = FakeLauncher(_outcome)
  assert stages.advance(_setup(tmp_path, setup.spec), resumed, lambda _: None) == 0
  assert resumed.launched == [["tanh seed 1"]]
  assert (workdir / "tuning.json").read_text() == recorded


def test_ties_everywhere_go_to_the_first_of_the_grid_and_a_miss_is_said(tmp_path):
  spec = _ablation(tmp_path, 'Tuning("epochs_to_target", variant_grids={"relu": '
                   '{"optimizer.learning_rate": (0.03, 0.01)}})')
  launcher = FakeLauncher(lambda run: (None, 0.5) if run.trial else (0.4, 0.3))
  assert stages.advance(_setup(tmp_path, spec), launcher, lambda _: None) == 0
  assert len(launcher.launched[0]) == 2  # tanh has no grid: it is not tuned.
  choice = json.loads((tmp_path / "sweep" / "tuning.json").read_text())["choices"]["relu"]
  assert choice["values"] == {"optimizer.learning_rate": 0.03}
  assert choice["margin_text"] == ("tied with learning_rate=0.01 at 4.00 epochs; listed first "
                                   "in the grid")
  assert choice["notes"] == ["no trial reached the target, so the tie rule chose",
                             "at the edge of the grid: the largest optimizer.learning_rate "
                             "tried; extend the grid"]


def test_a_failed_trial_stops_the_sweep_before_the_seeds(tmp_path):
  setup = _setup(tmp_path, _ablation(tmp_path))
  outcome = lambda run: 1 if run.trial == "learning_rate=0.03" else _outcome(run)
  launcher = FakeLauncher(outcome)
  assert stages.advance(setup, launcher, lambda _: None) == 1
  assert len(launcher.launched) == 1  # The trials, once; no seeds.
  assert not (setup.workdir / "relu").exists()
  data = json.loads((setup.workdir / "sweep.json").read_text())
  assert data["stage"] == "Stage: tuning, 6 of 8 trials done."
  failed = [row for row in data["tuning"]["trials"] if row["status"] == "failed"]
  assert [row["trial"] for row in failed] == ["learning_rate=0.03"] * 2


def test_a_launcher_that_submits_and_returns_advances_one_stage_per_invocation(tmp_path):
  """As a scheduler's would: each `cnnjax sweep` submits what the stage needs
  and returns; the next finds what the jobs left and goes on."""
  spec = _ablation(tmp_path)
  launcher = FakeLauncher(_outcome, waits=False)
  said = []
  assert stages.advance(_setup(tmp_path, spec), launcher, said.append) == 0
  assert [len(names) for names in launcher.launched] == [8]
  assert said[1].startswith("submitted; run the same command again")
  launcher.finish()
  assert stages.advance(_setup(tmp_path, spec), launcher, said.append) == 0
  assert [len(names) for names in launcher.launched] == [8, 6]
  launcher.finish()
  assert stages.advance(_setup(tmp_path, spec), launcher, said.append) == 0
  assert len(launcher.launched) == 2
  data = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
  assert data["stage"] == "Stage: done, seeds 0 to 2." and data["compute"]["wall_time_s"] is None


# --- --seeds auto -------------------------------------------------------------------

def test_the_schedule_of_rounds_and_its_level():
  assert stages.Seeds().schedule == [3, 6, 10]
  assert stages.Seeds().level == pytest.approx(1 - 0.05 / 3)
  assert stages.Seeds(maximum=20).schedule == [3, 6, 12, 20]
  assert stages.Seeds(maximum=4).schedule == [3, 4]
  assert stages.Seeds(maximum=2).schedule == [2]
  assert (stages.Seeds(fixed=5).schedule, stages.Seeds(fixed=5).level) == ([5], 0.95)


@pytest.mark.parametrize("estimates, following", [
    ((5,), 6), ((7,), 10), ((40,), 10), ((None,), 6), ((4, 9), 10), ((None, 5), 6)])
def test_a_round_goes_to_the_schedules_count_at_the_largest_estimate(estimates, following):
  claims = [sweep_summary.ClaimResult(None, "inconclusive", "", "", seeds_to_settle=estimate)
            for estimate in estimates]
  summary = sweep_summary.Summary("a.py", None, 3, [], claims)
  assert stages._round_outcome(summary, stages.Seeds(), 3)[0] == following


def _auto(tmp_path, outcome, claim="ratio=3.0", maximum=10):
  spec = _ablation(tmp_path, "None", claim=claim)
  setup = _setup(tmp_path, spec, stages.Seeds(maximum=maximum))
  launcher = FakeLauncher(outcome)
  assert stages.advance(setup, launcher, lambda _: None) == 0
  return launcher, json.loads((setup.workdir / "sweep.json").read_text())


def test_seeds_auto_stops_when_every_claim_is_settled(tmp_path):
  """relu reaches the target 6.5x sooner than tanh, beyond 2x at 3 seeds."""
  launcher, data = _auto(tmp_path, lambda run: (MEASURED[run.variant][run.seed % 4], 0.3),
                         claim="ratio=2.0")
  assert [len(names) for names in launcher.launched] == [6]
  assert not (tmp_path / "sweep" / "relu" / "seed3").exists()
  assert data["stopped"] == "every claim settled at 3 seeds"
  assert [entry["seeds"] for entry in data["seed_rounds"]] == [3]
  assert data["claims"][0]["verdict"] == "reproduced"
  assert data["level"] == data["claims"][0]["level"] == pytest.approx(1 - 0.05 / 3)
  assert "- **Stopped**: every claim settled at 3 seeds." in (
      tmp_path / "sweep" / "summary.md").read_text()


def test_seeds_auto_stops_at_the_maximum_and_a_rerun_derives_the_same_rounds(tmp_path):
  """relu and tanh alike (0.4, 0.6, 0.8, 0.6 epochs): "relu is sooner" stays
  inconclusive, so seeds are added to the maximum, 4."""
  same = lambda run: ((0.4, 0.6, 0.8, 0.6)[run.seed], 0.3)
  launcher, data = _auto(tmp_path, same, claim="", maximum=4)
  assert [len(names) for names in launcher.launched] == [6, 2]
  assert [entry["seeds"] for entry in data["seed_rounds"]] == [3, 4]
  assert data["seed_rounds"][0]["next"] == 4
  assert data["stopped"] == "the maximum of 4 seeds reached with 1 claim inconclusive"
  assert data["claims"][0]["verdict"] == "inconclusive"
  assert (data["claims"][0]["seeds_better"], data["level"]) == (4, 0.975)
  again = FakeLauncher(same)
  assert stages.advance(_setup(tmp_path, str(tmp_path / "ablation.py"), stages.Seeds(maximum=4)),
                        again, lambda _: None) == 0
  assert again.launched == []
  rerun = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
  assert rerun["seed_rounds"] == data["seed_rounds"] and rerun["stopped"] == data["stopped"]
  # The command line derives the same, summarizing.
  (tmp_path / "sweep" / "sweep.json").unlink()
  assert cli.main(["sweep", "--config", str(tmp_path / "ablation.py"), "--workdir",
                   str(tmp_path / "sweep"), "--seeds", "auto", "--max-seeds", "4",
                   "--summarize"]) == 0
  summarized = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
  assert summarized["seeds_policy"] == {"mode": "auto", "maximum": 4, "schedule": [3, 4],
                                        "level": 0.975}
  assert summarized["seed_rounds"] == data["seed_rounds"]


def test_seeds_auto_goes_on_to_the_estimate_when_a_claim_is_open(tmp_path):
  """Close seeds (relu 0.4-0.8, tanh 0.6-1.0 epochs) leave "relu is sooner"
  open at 3 seeds; the rounds follow the schedule 3, 6, 10."""
  outcome = lambda run: (((0.4, 0.6, 0.8) if run.variant == "relu" else (0.6, 0.8, 1.0))[
      run.seed % 3], 0.3)
  launcher, data = _auto(tmp_path, outcome, claim="")
  counts = [entry["seeds"] for entry in data["seed_rounds"]]
  assert counts[0] == 3 and set(counts) <= {3, 6, 10} and counts == sorted(counts)
  assert sum(len(names) for names in launcher.launched) == 2 * counts[-1]
  assert data["stopped"] in (f"every claim settled at {counts[-1]} seeds",
                             "the maximum of 10 seeds reached with 1 claim inconclusive")
  assert math.isclose(data["level"], 1 - 0.05 / 3)
