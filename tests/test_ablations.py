"""Every ablation in experiments/ablations/, with every argument it offers,
plans as `cnnjax sweep` plans it before training anything: the file loads,
each variant's config resolves and validates (cnnjax.sweep.plan_runs), each
model is built abstractly on its input (check_runs: jax.eval_shape, no
FLOPs), the optimizer finds every layer its weight decays name and the
schedule builds. The claims name the file's variants and say where in the
paper they come from; `shapes` and `smoke` train on embedded data only, the
default on the paper's dataset. Nothing trains and no data is read."""

import functools
import importlib.util

import jax
import pytest
from helpers import ROOT

from cnnjax import models
from cnnjax.data.datasets import dataset_spec
from cnnjax.sweep.spec import check_runs, load_sweep, plan_runs, plan_trials
from cnnjax.training import optim

DIRECTORY = ROOT / "experiments" / "ablations"
SHARED = "ablation_common.py"  # What the ablations import; not an ablation.
ABLATIONS = sorted(path for path in DIRECTORY.glob("*.py") if path.name != SHARED)
EMBEDDED = ("shapes/clean", "shapes/hard")
PAPER_DATASETS = ("cifar10", "imagenet2012")
SCALES = ("shapes", "smoke")
# The ablations whose papers chose a setting per variant, and so tune it.
TUNED = {"relu_vs_tanh": "AlexNet §3.1: the learning rates chosen independently",
         "pooling_vs_stride": "Springenberg et al. §3.1: each network at its best learning rate"}


def _arguments(path) -> list[str]:
  """"" (the paper's setting), each scale, and each of the file's other words
  alone and with each scale."""
  spec = importlib.util.spec_from_file_location(f"ablation_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  words = [word for word in module.ARGS if word not in SCALES]
  return ["", *SCALES, *(f"{word}{scale}" for word in words for scale in ("", ",shapes", ",smoke"))]


CASES = [(path, arg) for path in ABLATIONS for arg in _arguments(path)]


def test_the_directory_holds_the_ablations_of_issue_10():
  assert {path.stem for path in ABLATIONS} >= {
      "relu_vs_tanh", "lrn", "overlapping_pooling", "dropout", "plain_vs_residual",
      "pooling_vs_stride", "batchnorm", "auxiliary_classifiers"}


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda path: path.stem)
def test_a_file_opens_with_its_paper_commands_and_results(path):
  text = path.read_text()
  assert text.startswith('"""')
  for arg in ("", ":shapes", ":smoke"):
    assert f"cnnjax sweep --config experiments/ablations/{path.name}{arg} " in text


_DECAYS_CHECKED = set()


def _check_layer_decays(config) -> None:
  """The optimizer's weight-decay patterns against the model's kernels (a
  pattern matching no kernel is a UserError), once per model and decays."""
  key = config.model.to_json() + repr(config.optimizer.weight_decay_by_layer)
  if key in _DECAYS_CHECKED:
    return
  spec = dataset_spec(config.dataset.name)
  size = config.dataset.image_size or spec.image_size
  model = models.from_config(config)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                             jax.ShapeDtypeStruct((1, size, size, spec.channels), "float32"))
  optim.layer_weight_decays(config.optimizer, variables["params"])
  _DECAYS_CHECKED.add(key)


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda path: path.stem)
def test_a_file_tunes_each_variant_where_its_paper_did_or_says_why_not(path):
  sweep = load_sweep(str(path))
  if path.stem in TUNED:
    assert sweep.tuning is not None, TUNED[path.stem]
  else:
    assert sweep.tuning is None
    assert "One shared setting" in path.read_text(), "say why the variants share a setting"


@pytest.mark.parametrize("path, arg", CASES, ids=[f"{p.stem}:{a}" for p, a in CASES])
def test_every_variant_and_trial_plans_as_the_sweep_plans_it(path, arg, tmp_path):
  spec = f"{path}:{arg}" if arg else str(path)
  sweep = load_sweep(spec)
  runs = plan_runs(spec, sweep, 1, [], tmp_path)
  trials = plan_trials(spec, sweep, [], tmp_path)
  check_runs(runs + trials)
  names = {variant.name for variant in sweep.variants}
  for claim in sweep.claims:
    assert {claim.better, claim.worse} <= names
    assert "§" in claim.citation or "abstract" in claim.citation
  assert sweep.claims, "an ablation states the paper's claims"
  if sweep.tuning:
    assert len(trials) == sum(len(sweep.tuning.trials_of(name)) for name in names)
  for run in runs + trials:
    config = run.config
    optim.create_schedule(config.schedule, config.optimizer.learning_rate, 10, 100)
    if config.optimizer.weight_decay_by_layer:
      _check_layer_decays(config)
    if set(arg.split(",")) & set(SCALES):
      assert config.dataset.name in EMBEDDED and not config.dataset.data_dir
    else:
      assert config.dataset.name in PAPER_DATASETS
    if "smoke" in arg:
      assert 0 < config.num_train_steps <= 10
