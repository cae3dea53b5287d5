"""Fine-tuning (cnnjax.training.finetune): a run started from another's checkpoint,
with layers left fresh, frozen, or learning at their own rate; and the
mistakes a user makes there, each one line before anything is compiled."""

import functools
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from helpers import ROOT, tiny_config

from cnnjax import config as config_lib
from cnnjax import models
from cnnjax.errors import UserError
from cnnjax.training import finetune, steps, train
from cnnjax.workdir.checkpoint import Checkpointer


@pytest.fixture(scope="module")
def source(digits_dir, tmp_path_factory):
  """A finished 6-step LeNet-5 run on digits: the weights to start from."""
  workdir = tmp_path_factory.mktemp("source")
  train.train_and_evaluate(train.plan(tiny_config(digits_dir)), workdir)
  return workdir


def _saved_params(workdir):
  checkpointer = Checkpointer(workdir / "checkpoints", keep=1, read_only=True)
  return checkpointer.restore_as_saved(checkpointer.latest_step())["params"]


def test_starts_from_the_source_keeps_the_excluded_fresh_and_never_moves_the_frozen(
    digits_dir, source, tmp_path, capsys):
  config = tiny_config(digits_dir, init_from=str(source), init_from_exclude=("^output/",),
                       frozen=("^C1/", "^C3/"), pretrained_learning_rate_scale=0.5)
  plan = train.plan(config)
  fresh = train.fresh_state(plan)
  start = train.initial_state(plan, Checkpointer(tmp_path / "none", keep=1, read_only=True))
  # LeNet-5's arrays: C1, S2, C3, S4, C5, F6 and output, a kernel and a bias each.
  assert ("12 arrays loaded, 2 left fresh (2 parameters and 0 BatchNorm statistics, "
          "config.init_from_exclude), 4 parameters frozen") in capsys.readouterr().out
  saved = _saved_params(source)
  for layer in ("C1", "C3", "C5", "F6"):
    np.testing.assert_array_equal(start.params[layer]["kernel"], saved[layer]["kernel"])
  np.testing.assert_array_equal(start.params["output"]["kernel"], fresh.params["output"]["kernel"])
  assert not np.array_equal(start.params["output"]["kernel"], saved["output"]["kernel"])

  tuned = tmp_path / "tuned"
  train.train_and_evaluate(plan, tuned)
  after = _saved_params(tuned)
  for layer in ("C1", "C3"):  # Frozen: bitwise the source's after 6 steps.
    np.testing.assert_array_equal(after[layer]["kernel"], saved[layer]["kernel"])
    np.testing.assert_array_equal(after[layer]["bias"], saved[layer]["bias"])
  for layer in ("C5", "output"):
    assert not np.array_equal(after[layer]["kernel"], start.params[layer]["kernel"])


def test_the_loaded_part_learns_at_its_own_rate():
  """One SGD step: loaded parameters move `pretrained_learning_rate_scale`
  as far as the excluded (fresh) ones; frozen ones do not move."""
  config = config_lib.base_config()
  config.update(dict(init_from="somewhere", init_from_exclude=("^head/",), frozen=("^stem/",),
                     pretrained_learning_rate_scale=0.1))
  config.optimizer.update(momentum=0.0)
  from cnnjax.training import optim
  schedule = optax.constant_schedule(1.0)
  tx = optim.create_optimizer(config, schedule, steps_per_epoch=1)
  params = {"stem": {"kernel": jnp.ones(2)}, "body": {"kernel": jnp.ones(2)},
            "head": {"kernel": jnp.ones(2)}}
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params, value=jnp.zeros(()))
  np.testing.assert_allclose(updates["head"]["kernel"], -1.0)
  np.testing.assert_allclose(updates["body"]["kernel"], -0.1)
  np.testing.assert_allclose(updates["stem"]["kernel"], 0.0)


class _Normalised(nn.Module):
  num_classes: int = 2

  @nn.compact
  def __call__(self, x, *, train):
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5, name="bn_a")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5, name="bn_b")(x)
    return nn.Dense(self.num_classes, name="head")(x)


def test_a_frozen_batchnorm_keeps_its_running_statistics():
  config = config_lib.base_config()
  config.frozen = ("^bn_a/",)
  model = _Normalised()
  tx = optax.sgd(0.1)
  state = steps.create_train_state(jax.random.key(0), model, tx, (3,))
  step = jax.pmap(functools.partial(
      steps.train_step, model=model, tx=tx, schedule=optax.constant_schedule(0.1),
      frozen_statistics=finetune.frozen_statistics(config)), axis_name=steps.AXIS)
  batch = {"image": 5.0 + jax.random.normal(jax.random.key(1), (1, 8, 3)),
           "label": jnp.zeros((1, 8), jnp.int32)}
  replicated = jax.tree.map(lambda x: x[None], state)
  new_state, _ = step(replicated, batch, jax.random.key(2)[None])
  stats = jax.tree.map(lambda x: np.asarray(x[0]), new_state.batch_stats)
  np.testing.assert_array_equal(stats["bn_a"]["mean"], state.batch_stats["bn_a"]["mean"])
  assert not np.allclose(stats["bn_b"]["mean"], state.batch_stats["bn_b"]["mean"])


def test_mistakes_are_one_line_before_compiling(digits_dir, source, tmp_path):
  run = tmp_path / "run"  # A run about to start there, from config.init_from.
  with pytest.raises(UserError, match="is neither a workdir with checkpoints"):
    train.check(tiny_config(digits_dir, init_from=str(tmp_path / "missing")), workdir=run)
  with pytest.raises(UserError, match="has no checkpoint of step 4 .it has 3, 6."):
    train.check(tiny_config(digits_dir, init_from=str(source), init_from_step=4), workdir=run)
  with pytest.raises(UserError, match=r"config.frozen: '\^conv1/' matches no parameter"):
    train.check(tiny_config(digits_dir, init_from=str(source), frozen=("^conv1/",)), workdir=run)
  with pytest.raises(UserError, match="not a regular expression"):
    train.plan(tiny_config(digits_dir, frozen=("C1[",)))


def test_the_source_is_read_only_by_a_run_that_starts_from_it(digits_dir, source, tmp_path):
  """A workdir with a checkpoint of its own resumes from it, and a plan (what
  `cnnjax eval` builds) never reads the source: a fine-tuned run still
  evaluates and resumes once its source has been moved away."""
  config = tiny_config(digits_dir, init_from=str(tmp_path / "moved"))
  train.plan(config)
  resumed = tmp_path / "resumed"  # Checkpoints of its own (the source's steps 3 and 6).
  shutil.copytree(source / "checkpoints", resumed / "checkpoints")
  train.check(config, workdir=resumed)
  with pytest.raises(UserError, match="is neither a workdir with checkpoints"):
    train.check(config, workdir=tmp_path / "new")


def test_another_network_names_the_first_difference_and_the_fix_before_the_data(
    source, tmp_path):
  """The paper's LeNet-5 connects C3 partially; the modern one fully: C3's
  kernel differs. Refused from the checkpoint's shapes, before the dataset is
  prepared (its data dir is never made), with this model's own layer names."""
  data_dir, run = tmp_path / "tfds", tmp_path / "run"
  config = tiny_config(str(data_dir), model__name="lenet5_modern", init_from=str(source))
  with pytest.raises(UserError, match=r"params C3/kernel is .* there and .* here.*"
                                      r"""init_from_exclude='\("\^C3/",\)'"""):
    train.check(config, workdir=run)
  assert not data_dir.exists()
  # CIFAR-100: colour images and 100 classes; only the ImageNet-free table is read.
  with pytest.raises(UserError, match=r"params C1/kernel is \[5, 5, 1, 6\] there and "
                                      r"\[5, 5, 3, 6\] here \(and 2 more\).*"
                                      r"""'\("\^C1/", "\^output/",\)'"""):
    train.check(tiny_config(str(data_dir), init_from=str(source), dataset__name="cifar100"),
                workdir=run)
  assert not data_dir.exists()


@pytest.mark.parametrize("arm, trained", [("last_layer", {"output"}),
                                          ("all_layers", {"C1", "C3", "C5", "F6", "output"})])
def test_the_example_experiment_trains_what_it_says(arm, trained):
  """experiments/finetune_shapes.py: a fresh classifier; the linear probe trains
  it alone, the full fine-tuning every layer, the loaded ones at a tenth."""
  config = config_lib.load(f"{ROOT}/experiments/finetune_shapes.py:{arm}")
  model = models.from_config(config)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))["params"]
  frozen = finetune.frozen_mask(config)(params)
  loaded = finetune.pretrained_mask(config)(params)
  for layer in params:
    assert all(not leaf for leaf in jax.tree.leaves(frozen[layer])) == (layer in trained), layer
    assert all(jax.tree.leaves(loaded[layer])) == (layer in trained and layer != "output"), layer
  assert config.pretrained_learning_rate_scale == (0.1 if arm == "all_layers" else 1.0)
