"""torchvision weight import (cnnjax.pretrained, `cnnjax import-weights`)
against golden logits computed by torchvision (scripts/make_torchvision_golden.py),
without torch: the weights are regenerated from the fixtures' seed and names."""

import ast
import functools
import gzip
import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torchvision_golden as golden

from cnnjax import cli, models
from cnnjax.errors import UserError
from cnnjax.pretrained import torchvision as pretrained

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "torchvision"


@functools.cache
def _record(name: str) -> dict:
  return json.loads((FIXTURES / f"{name}.json").read_text())


def _weights_file(directory: pathlib.Path, name: str, drop=(), add=None) -> pathlib.Path:
  """The golden weights of `name` as a safetensors file, less the keys
  starting with a prefix in `drop`, plus `add`."""
  record = _record(name)
  weights = golden.golden_weights(record["seed"], record["state_dict"])
  weights = {key: value for key, value in weights.items() if not key.startswith(tuple(drop))}
  path = directory / f"{name}.safetensors"
  golden.write_safetensors(path, {**weights, **(add or {})})
  return path


def _model_and_shapes(model_name: str, image_size: int, num_classes: int = golden.NUM_CLASSES,
                      **overrides):
  model = models.create_model(model_name, num_classes=num_classes, **overrides)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          jnp.zeros((1, image_size, image_size, 3)))
  return model, shapes


def _imported(name: str, directory: pathlib.Path):
  """cnnjax's model of golden `name` with the golden weights imported from a file."""
  record = _record(name)
  model, shapes = _model_and_shapes(record["cnnjax_model"], record["input_shape"][2],
                                    **record["overrides"])
  tensors = pretrained.read_safetensors(_weights_file(directory, name))
  variables, notes = pretrained.torchvision_variables(record["cnnjax_model"], model, shapes,
                                                      tensors, "golden")
  assert notes == []
  return model, variables


def _inputs(record: dict) -> np.ndarray:
  return golden.golden_inputs(record["seed"], tuple(record["input_shape"])).transpose(0, 2, 3, 1)


def _max_difference(ours, theirs) -> float:
  return float(np.max(np.abs(np.asarray(ours, np.float64) - np.asarray(theirs))))


# Float32 through up to 121 layers, in another order of summation than
# PyTorch's: differences of a few 1e-6 of the logits' size are rounding.
TOLERANCE = 1e-4


@pytest.mark.parametrize("name", sorted(golden.GOLDEN))
def test_imported_weights_give_torchvisions_logits(name, tmp_path):
  record = _record(name)
  model, variables = _imported(name, tmp_path)
  logits = jax.jit(functools.partial(model.apply, train=False))(variables, _inputs(record))
  expected = np.asarray(record["eval_logits"])
  difference = _max_difference(logits, expected)
  print(f"{name}: max |logit difference| {difference:.2e} (logits up to "
        f"{np.abs(expected).max():.1f})")
  assert difference <= TOLERANCE * max(1.0, np.abs(expected).max())


def test_googlenet_auxiliary_heads_give_torchvisions_logits_in_training(tmp_path):
  """Batch statistics, dropout off: the main and both auxiliary logits, the
  heads pooling 4a's and 4d's 14x14 maps with torchvision's bins."""
  record = _record("googlenet")
  model, variables = _imported("googlenet", tmp_path)
  apply = jax.jit(functools.partial(model.apply, train=True,
                                    mutable=["batch_stats", "intermediates"]))
  logits, state = apply(variables, _inputs(record))
  aux_logits = state["intermediates"]["aux_logits"]
  expected = [record["train_logits"], *record["train_aux_logits"]]
  differences = [_max_difference(ours, theirs)
                 for ours, theirs in zip([logits, *aux_logits], expected)]
  print(f"googlenet train mode: max |difference| main {differences[0]:.2e}, "
        f"aux1 {differences[1]:.2e}, aux2 {differences[2]:.2e}")
  scale = max(1.0, max(np.abs(np.asarray(e)).max() for e in expected))
  assert len(aux_logits) == 2 and max(differences) <= TOLERANCE * scale


def test_googlenet_transform_input_is_torchvisions(tmp_path):
  """The option torchvision's loader turns on with googlenet's weights."""
  record = _record("googlenet")
  model, variables = _imported("googlenet", tmp_path)
  logits = jax.jit(functools.partial(model.clone(transform_input=True).apply, train=False))(
      variables, _inputs(record))
  expected = np.asarray(record["eval_logits_transform_input"])
  difference = _max_difference(logits, expected)
  print(f"googlenet transform_input: max |logit difference| {difference:.2e}")
  assert difference <= TOLERANCE * max(1.0, np.abs(expected).max())
  assert _max_difference(expected, record["eval_logits"]) > 1e-2  # It changes the logits.


def test_googlenet_bn_pools_its_auxiliary_heads_with_torchvisions_bins():
  """On 4a's 14x14 maps torchvision's AdaptiveAvgPool2d((4, 4)) averages
  rows and columns 0-3, 3-6, 7-10, 10-13; §5's 5x5/3 pool (googlenet) 0-4,
  3-7, 6-10, 9-13, which the golden auxiliary logits above would not match."""
  from cnnjax.models import googlenet

  maps = np.random.default_rng(0).standard_normal((1, 14, 14, 1)).astype(np.float32)
  bins = [(0, 4), (3, 7), (7, 11), (10, 14)]
  expected = [[maps[0, top:bottom, left:right, 0].mean() for left, right in bins]
              for top, bottom in bins]
  pooled = {pooling: np.asarray(googlenet.aux_pool(jnp.asarray(maps), pooling))
            for pooling in googlenet.AUX_POOLINGS}
  assert models.model_defaults("googlenet_bn")["aux_pooling"] == "adaptive"
  assert models.model_defaults("googlenet")["aux_pooling"] == "paper"
  np.testing.assert_allclose(pooled["adaptive"][0, :, :, 0], expected, atol=1e-6)
  assert not np.allclose(pooled["paper"][0, :, :, 0], expected, atol=1e-3)


def test_reads_the_reference_writers_file():
  """sample.safetensors was written by the safetensors package itself."""
  tensors = pretrained.read_safetensors(FIXTURES / "sample.safetensors")
  np.testing.assert_array_equal(tensors["a.weight"], np.arange(6).reshape(2, 3) / 4)
  np.testing.assert_array_equal(tensors["b"], [0.5, -1.0, 2.0, 65504.0])
  np.testing.assert_array_equal(tensors["c.bias"], [1.5, -0.25, 3.0])
  assert tensors["c.bias"].dtype == np.float32 and tensors["b"].dtype == np.float32
  assert tensors["d.num_batches_tracked"] == 7 and tensors["d.num_batches_tracked"].shape == ()


def _one_line_error(path: pathlib.Path) -> str:
  with pytest.raises(UserError) as error:
    pretrained.read_safetensors(path)
  message = str(error.value)
  assert "\n" not in message and str(path) in message
  return message


@pytest.mark.parametrize("keep", [0, 5, 20, 300])
def test_a_truncated_file_is_a_one_line_error(keep, tmp_path):
  data = (FIXTURES / "sample.safetensors").read_bytes()
  path = tmp_path / "cut.safetensors"
  path.write_bytes(data[:keep])
  assert "truncated" in _one_line_error(path) or keep < 8


@pytest.mark.parametrize("content", [
    b"PK\x03\x04" + bytes(60),  # A zip: torch.save's format since 1.6.
    b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.",  # A pickle: the legacy .pth.
    (20).to_bytes(8, "little") + b"not json at all!!!!!" + bytes(8),
    (2).to_bytes(8, "little") + b"[]",
])
def test_a_file_that_is_not_safetensors_is_a_one_line_error(content, tmp_path):
  path = tmp_path / "weights.safetensors"
  path.write_bytes(content)
  _one_line_error(path)


def test_inconsistent_offsets_are_a_one_line_error(tmp_path):
  header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}).encode()
  path = tmp_path / "bad.safetensors"
  path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
  assert "offset" in _one_line_error(path)  # The safetensors package's reason.


@pytest.mark.parametrize("dtype, size", [("F8_E4M3", 2), ("C64", 16)])
def test_a_dtype_torchvisions_weights_never_hold_is_named(dtype, size, tmp_path):
  header = json.dumps({"w": {"dtype": dtype, "shape": [2], "data_offsets": [0, size]}}).encode()
  path = tmp_path / "odd.safetensors"
  path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(size))
  assert f"tensor 'w' is {dtype}" in _one_line_error(path)


def test_a_missing_file_is_a_one_line_error(tmp_path):
  assert "cannot read" in _one_line_error(tmp_path / "absent.safetensors")


def _fit_error(file_name: str, model_name: str, tmp_path, **kwargs) -> str:
  model, shapes = _model_and_shapes(model_name, 32, **kwargs)
  tensors = pretrained.read_safetensors(tmp_path / file_name)
  with pytest.raises(UserError) as error:
    pretrained.check_fits(model_name, model, shapes, tensors, file_name)
  assert "\n" not in str(error.value)
  return str(error.value)


def test_another_models_weights_name_the_first_missing_key(tmp_path):
  _weights_file(tmp_path, "resnet18")
  message = _fit_error("resnet18.safetensors", "resnet34", tmp_path)
  # ResNet-34 has 3, 4, 6, 3 blocks: its layer1.2 is the first ResNet-18 lacks.
  assert re.search(r"the key 'layer1\.2\.\w+\.\w+' is missing \(and 79 others\)", message)
  assert "--model resnet34" in message


def test_an_unexpected_key_is_named(tmp_path):
  _weights_file(tmp_path, "resnet18", add={"fc2.weight": np.zeros((2, 2), np.float32)})
  assert "'fc2.weight' is unexpected" in _fit_error("resnet18.safetensors", "resnet18", tmp_path)


def test_a_shape_mismatch_is_named(tmp_path):
  _weights_file(tmp_path, "resnet18")
  message = _fit_error("resnet18.safetensors", "resnet18", tmp_path, num_classes=1000)
  assert ("'fc.weight' is [10, 512] where resnet18 needs [1000, 512]" in message
          or "'fc.bias' is [10] where resnet18 needs [1000] (and 1 other)" in message)


def test_densenets_legacy_names_import_as_torchvisions_loader_renames_them(tmp_path):
  """The published densenet*.pth files say "denselayer1.norm.1.weight"."""
  record = _record("densenet121")
  weights = golden.golden_weights(record["seed"], record["state_dict"])
  legacy = {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key): value
            for key, value in weights.items()}
  assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
  model, shapes = _model_and_shapes("densenet121", 64)
  imported, _ = pretrained.torchvision_variables("densenet121", model, shapes, legacy, "file")
  np.testing.assert_array_equal(
      imported["params"]["block1_layer1"]["bn1"]["scale"],
      weights["features.denseblock1.denselayer1.norm1.weight"])


def test_googlenet_without_auxiliary_heads_keeps_them_fresh(tmp_path):
  """torchvision treats the heads as optional; a file without them imports."""
  path = _weights_file(tmp_path, "googlenet", drop=("aux1.", "aux2."))
  model, shapes = _model_and_shapes("googlenet_bn", 64)
  variables = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes)
  imported, notes = pretrained.torchvision_variables(
      "googlenet_bn", model, variables, pretrained.read_safetensors(path), "file")
  assert len(notes) == 2 and "aux1" in notes[0]
  np.testing.assert_array_equal(imported["params"]["aux4a"]["fc1"]["kernel"],
                                variables["params"]["aux4a"]["fc1"]["kernel"])
  assert not np.array_equal(imported["params"]["fc"]["kernel"], variables["params"]["fc"]["kernel"])


def _cnnjax(capsys, *args) -> tuple[int, str]:
  status = cli.main(["import-weights", *map(str, args)])
  return status, capsys.readouterr().err


def test_import_writes_a_workdir_whose_checkpoint_restores_the_weights(tmp_path, capsys):
  """import → config.json + checkpoint → restored into the template `cnnjax
  eval` builds from the workdir's config: exactly the file's values in our
  layout, and a fresh optimizer state."""
  from cnnjax import config as config_lib
  from cnnjax.training import optim, steps
  from cnnjax.workdir.checkpoint import Checkpointer

  source = _weights_file(tmp_path, "resnet18")
  workdir = tmp_path / "imported"
  status, err = _cnnjax(capsys, "--model", "resnet18", "--from", source, "--workdir", workdir,
                        "--config.dataset.name=shapes/clean", "--config.dataset.image_size=32")
  assert status == 0, err
  assert sorted(path.name for path in tmp_path.iterdir()) == ["imported", "resnet18.safetensors"]
  config = config_lib.from_workdir(workdir)  # As `cnnjax eval` reads it.
  assert config.dataset.eval_split == "validation"
  assert config.dataset.eval_preprocess == "resize_center_crop"
  model = models.from_config(config, steps.AXIS)
  optimizer = optim.create_optimizer(
      config, optim.create_schedule(config.schedule, config.optimizer.learning_rate, 10, 100), 10)
  shapes = jax.eval_shape(functools.partial(steps.create_train_state, jax.random.key(0), model,
                                            optimizer, (32, 32, 3)))
  template = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes)
  checkpointer = Checkpointer(workdir / "checkpoints", config.keep_checkpoints, read_only=True)
  restored = checkpointer.restore(checkpointer.latest_step(), template)
  checkpointer.close()
  expected, _ = pretrained.torchvision_variables(
      "resnet18", model, {"params": shapes.params, "batch_stats": shapes.batch_stats},
      pretrained.read_safetensors(source), "file")
  assert int(restored.step) == 0
  for key in ("params", "batch_stats"):
    for ours, saved in zip(jax.tree.leaves(expected[key]), jax.tree.leaves(getattr(restored, key))):
      np.testing.assert_array_equal(ours, saved)
  tensors = pretrained.read_safetensors(source)
  np.testing.assert_array_equal(restored.params["head"]["kernel"], tensors["fc.weight"].T)
  np.testing.assert_array_equal(restored.batch_stats["bn_init"]["var"], tensors["bn1.running_var"])
  assert all(not np.any(leaf) for leaf in jax.tree.leaves(restored.opt_state))


@pytest.mark.parametrize("case", ["truncated", "not_safetensors", "other_model", "unsupported"])
def test_a_wrong_input_is_a_one_line_error_and_writes_nothing(case, tmp_path, capsys):
  source = _weights_file(tmp_path, "resnet18")
  model = {"other_model": "resnet34", "unsupported": "googlenet"}.get(case, "resnet18")
  if case == "truncated":
    source.write_bytes(source.read_bytes()[:-100])
  if case == "not_safetensors":
    source.write_bytes(b"PK\x03\x04" + bytes(100))
  before = sorted(tmp_path.iterdir())
  status, err = _cnnjax(capsys, "--model", model, "--from", source, "--workdir",
                        tmp_path / "new", "--config.dataset.image_size=32")
  assert status == 2 and err.count("\n") == 1 and err.startswith("cnnjax: error: ")
  assert sorted(tmp_path.iterdir()) == before


def test_a_non_empty_workdir_is_refused(tmp_path, capsys):
  source = _weights_file(tmp_path, "resnet18")
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "notes.txt").write_text("mine")
  status, err = _cnnjax(capsys, "--model", "resnet18", "--from", source, "--workdir", workdir)
  assert status == 2 and "not empty" in err
  assert [path.name for path in workdir.iterdir()] == ["notes.txt"]


def test_the_default_config_is_torchvisions_imagenet_evaluation():
  from cnnjax.pretrained import import_weights

  config = import_weights.imagenet_eval_config("googlenet_bn")
  assert (config.dataset.name, config.dataset.eval_split, config.dataset.image_size) == (
      "imagenet2012", "validation", 224)
  assert config.model.transform_input  # torchvision's loader sets it with googlenet's weights.


@functools.cache
def _torchvision_shapes() -> dict:
  return json.loads(gzip.decompress((FIXTURES / "state_dict_shapes.json.gz").read_bytes()))


@pytest.mark.parametrize("name", pretrained.supported_models())
def test_every_supported_model_fits_torchvisions_names_and_shapes(name):
  """torchvision's state dict of each network (names and shapes, stored by
  the script) fits the model exactly: no key missing, unexpected or misshapen."""
  shapes = _torchvision_shapes()
  model, variables = _model_and_shapes(name, 224, num_classes=1000)
  tensors = {key: jax.ShapeDtypeStruct(tuple(shape), np.float32)
             for key, shape in shapes[golden.COUNTERPARTS[name]].items()}
  expected, notes = pretrained.check_fits(name, model, variables, tensors, "torchvision")
  assert notes == [] and len(expected) == len(jax.tree.leaves(variables))


def test_cnnjax_eval_evaluates_an_imported_workdir(tmp_path, capsys, digits_dir):
  """End to end on the embedded digits: weights named as torchvision names
  vgg11_bn's, imported with an experiment's config, evaluated by `cnnjax eval`."""
  from helpers import ROOT

  stages = "((8, (3,)), (8, (3,)), (8, (3, 3)), (8, (3, 3)), (8, (3, 3)))"
  model = models.create_model("vgg11_bn", num_classes=10, stages=ast.literal_eval(stages),
                              dense_features=16)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                          jnp.zeros((1, 32, 32, 1)))
  source = tmp_path / "vgg.safetensors"
  golden.write_safetensors(source, {
      key: golden.golden_tensor(0, key, tuple(pretrained._torch_shape(kind, shape)))
      for key, (_, kind, _, shape) in pretrained._expected("vgg11_bn", model, shapes).items()})
  workdir = tmp_path / "run"
  overrides = [f"--config.dataset.data_dir={digits_dir}", f"--config.model.stages={stages}",
               "--config.model.dense_features=16"]
  status, err = _cnnjax(capsys, "--model", "vgg11_bn", "--from", source, "--workdir", workdir,
                        "--config", ROOT / "experiments" / "vgg11_bn_digits.py", *overrides)
  assert status == 0, err
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0
  assert "step 0: eval/loss=" in capsys.readouterr().out
  assert json.loads((workdir / "eval" / "0.json").read_text())
