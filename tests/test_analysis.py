"""cnnjax.analysis: convolution arithmetic against hand-computed values, the
layer table against LeNet-5's published table, the registry's parameter
counts, XLA's cost analysis and published multiply-accumulate counts, and the
`summary` and `plot` commands."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from helpers import ROOT

from cnnjax import cli, models
from cnnjax.analysis import Field, conv_output_size, receptive_fields, zoo
from cnnjax.analysis import summary as summary_lib


def _table(name, image_size=None, channels=None, num_classes=None, **options):
  size, default_channels, classes = summary_lib.default_input(name)
  return summary_lib.summarize(summary_lib.Model(
      name, image_size or size, channels or default_channels, num_classes or classes, options))


def _rows(name, **kwargs):
  return {row.name: row for row in _table(name, **kwargs).rows}


def _small(name):
  """The smallest input of at least 32 that `name` takes, or its native one
  if that is smaller: cheap to trace, and every layer still there."""
  size, _, classes = summary_lib.default_input(name)
  return min(size, max(32, models.create_model(name, num_classes=classes).min_input_size()))


# --- Arithmetic ------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, size", [
    ((32, 5), 28),                # LeNet-5 C1 (§II.B).
    ((28, 2, 2), 14),             # S2.
    ((227, 11, 4), 55),           # AlexNet conv1 (§3.5, with the 227 its arithmetic needs).
    ((224, 11, 4, 2), 55),        # torchvision's padded 224.
    ((224, 7, 2, 3), 112),        # ResNet conv1.
    ((112, 3, 2, 1), 56),         # ResNet's max pool.
    ((55, 3, 2), 27),             # AlexNet's overlapping pool.
    ((32, 3, 1, 0, 2), 28),       # Dilation 2: a 3x3 kernel spans 5 pixels.
    ((7, 3, 2, 1, 3), 2),         # floor((7 + 2 - 7) / 2) + 1.
])
def test_conv_output_size_by_hand(arguments, size):
  assert conv_output_size(*arguments) == size


@pytest.mark.parametrize("arguments, message", [
    ((4, 5), "does not fit"), ((32, 3, 0), "stride must be"), ((32, 3, 1, -1), "padding must"),
    ((32, 2.5), "kernel must"),
])
def test_conv_output_size_refuses_impossible_layers(arguments, message):
  with pytest.raises(ValueError, match=message):
    conv_output_size(*arguments)


def test_receptive_fields_by_hand():
  lenet = receptive_fields([(5,), (2, 2), (5,), (2, 2), (5,)])
  assert [(f.size, f.jump) for f in lenet] == [(5, 1), (6, 2), (14, 2), (16, 4), (32, 4)]
  # VGG §2.3: two stacked 3x3 convolutions see 5x5, three see 7x7.
  assert [f.size for f in receptive_fields([(3, 1, 1)] * 3)] == [3, 5, 7]
  # Yu & Koltun 2016: 3x3 convolutions dilated 1, 2, 4 see 3, 7, 15.
  assert [f.size for f in receptive_fields([(3, 1, 0, 1), (3, 1, 0, 2), (3, 1, 0, 4)])] == [3, 7, 15]
  # Centres: "valid" moves the first unit's centre by (k-1)/2 input pixels, "same" does not.
  assert Field().through(3).start == 1.5 and Field().through(3, padding=1).start == 0.5
  assert receptive_fields([(11, 4), (3, 2)])[-1] == Field(19, 8, 9.5)


# --- LeNet-5 against its paper ---------------------------------------------------------------

# LeNet-5 §II.B: trainable parameters and connections per layer. The paper's
# connections count one bias edge per unit; the table's exclude biases.
LENET_PAPER = {"C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600),
               "S4": (32, 2_000), "C5": (48_120, 48_120), "F6": (10_164, 10_164)}


def test_lenet5_reproduces_the_papers_table():
  table = _table("lenet5")
  rows = {row.name: row for row in table.rows}
  assert list(rows) == ["C1", "S2", "C3", "S4", "C5", "F6", "output", "total"]
  assert [rows[n].type for n in rows] == ["conv", "subsampling", "conv", "subsampling", "conv",
                                          "dense", "dense", "total"]
  c1 = rows["C1"]
  assert (c1.output_shape, c1.units, c1.weights, c1.biases, c1.connections, c1.macs) == (
      (28, 28, 6), 4_704, 150, 6, 117_600, 117_600)
  assert (rows["C3"].weights, rows["C3"].connections) == (60 * 25, 150_000)  # Table I: 60 kernels.
  for name, (params, connections) in LENET_PAPER.items():
    assert rows[name].params == params, name
    assert rows[name].connections + rows[name].units == connections, name
  output = rows["output"]
  assert (output.units, output.weights, output.connections) == (10, 840, 840)
  assert [(rows[n].receptive_field, rows[n].jump) for n in ("C1", "S2", "C3", "S4", "C5", "F6")] \
      == [(5, 1), (6, 2), (14, 2), (16, 4), (32, 4), (32, 4)]
  total = rows["total"]
  assert (total.params, total.weights + total.biases) == (60_850, 60_850)
  assert total.units == sum(rows[n].units for n in list(rows)[:-1])
  assert total.macs == 117_600 + 1_176 + 150_000 + 400 + 48_000 + 10_080 + 840
  assert table.unused_params == {}


def test_lenet5_with_a_full_c3():
  rows = _rows("lenet5", c3_connections="full")
  assert (rows["C3"].weights, rows["C3"].params, rows["C3"].connections) == (2_400, 2_416, 240_000)
  assert rows["total"].params == 61_750


# --- Totals against the registry, XLA and published figures -----------------------------------

# Every layer kind and every family, at small inputs (parameter counts do not
# depend on the input, except a locally connected layer's: those nets keep theirs).
REGISTRY_CASES = ["lenet5_modern", "alexnet", "alexnet_owt", "vgg_a_lrn", "vgg11_bn", "googlenet",
                  "googlenet_bn", "resnet18", "plain18", "resnet20", "resnet50", "densenet121",
                  "cifar_convnet_18pct", "cifar_convnet_11pct"]


@pytest.mark.parametrize("name", REGISTRY_CASES)
def test_totals_match_the_registry(name):
  image_size = _small(name)
  table = _table(name, image_size=image_size)
  _, channels, classes = summary_lib.default_input(name)
  module = models.create_model(name, num_classes=classes)
  images = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
  variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x, train=False), images)
  registry = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
  total = table.rows[-1]
  assert total.params + sum(table.unused_params.values()) == registry
  assert total.params == total.weights + total.biases
  top_level = [row for row in table.rows[:-1] if "/" not in row.name]
  assert sum(row.params for row in top_level) == total.params  # They partition the network.
  assert sum(row.macs for row in top_level) == total.macs
  if name.startswith("googlenet"):  # The auxiliary heads run in training only.
    assert set(table.unused_params) == {"aux4a", "aux4d"}
  else:
    assert table.unused_params == {}


def _macs_and_xla(name, image_size=None, **options):
  size, channels, classes = summary_lib.default_input(name)
  spec = summary_lib.Model(name, image_size or size, channels, classes, options)
  return summary_lib.summarize(spec).rows[-1].macs, summary_lib.xla_macs(spec)


def test_macs_agree_with_xla_where_nothing_is_padded():
  """LeNet-5 pads nothing: XLA counts the same multiply-accumulates, plus the
  element-wise work (activations, subsampling) that the table leaves out."""
  macs, xla = _macs_and_xla("lenet5", c3_connections="full")
  assert macs <= xla <= 1.05 * macs


def _taps(size, kernel, padding):
  """Kernel taps that land inside a map of `size` over all output positions
  of a stride-1 "same" convolution: kernel x size, less the taps on the padding."""
  return kernel * size - 2 * sum(range(1, padding + 1))


def test_xla_skips_the_taps_on_padding():
  """cuda-convnet's 80sec net, by hand: every 5x5 convolution is padded by 2.
  The table counts units x fan-in (as torchvision and the papers do); XLA
  counts only the taps inside the image, and the small rest is element-wise."""
  convs = [(32, 3, 32), (16, 32, 32), (8, 32, 64)]  # (side, maps in, maps out).
  dense = 4 * 4 * 64 * 64 + 64 * 10
  macs, xla = _macs_and_xla("cifar_convnet_80sec")
  assert macs == sum(side * side * 25 * m_in * m_out for side, m_in, m_out in convs) + dense
  inside = sum(_taps(side, 5, 2) ** 2 * m_in * m_out for side, m_in, m_out in convs) + dense
  assert inside < xla <= 1.02 * inside


@pytest.mark.parametrize("name, within", [
    ("vgg19", 0.05), ("resnet50", 0.05), ("googlenet", 0.05), ("alexnet", 0.08),
    ("resnet34", 0.08)])
def test_macs_agree_with_xla_at_native_sizes(name, within):
  """At 224 the padding is a small part of the maps: XLA is a few percent
  below the table, more where 3x3 convolutions run on 7x7 maps (ResNet-34)."""
  macs, xla = _macs_and_xla(name)
  assert (1 - within) * macs <= xla <= macs


def test_partial_c3_counts_only_existing_connections_where_xla_computes_all():
  """PartialConv runs a dense 6->16 convolution whose missing kernels are
  zeros: the table counts (96 - 60) x 25 x 100 = 90,000 fewer MACs than XLA."""
  paper, paper_xla = _macs_and_xla("lenet5")
  full, full_xla = _macs_and_xla("lenet5", c3_connections="full")
  assert full - paper == 90_000
  assert paper_xla == pytest.approx(full_xla, rel=0.01)


@pytest.mark.parametrize("name", ["vgg19", "resnet34", "resnet50"])
def test_macs_match_published_figures(name):
  macs = _table(name).rows[-1].macs
  assert macs / 1e9 == pytest.approx(zoo.PUBLISHED[name].gmacs, rel=0.01)


# --- Structure and receptive fields ------------------------------------------------------------

def test_alexnet_rows_fields_and_towers():
  rows = _rows("alexnet")
  path = ["conv1", "local_response_norm_1", "pool1", "conv2", "local_response_norm_2", "pool2",
          "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8", "total"]
  assert list(rows) == path
  expected = receptive_fields([(11, 4), (3, 2), (5, 1, 2), (3, 2), (3, 1, 1), (3, 1, 1),
                               (3, 1, 1), (3, 2)])
  convs_and_pools = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5"]
  assert [(rows[n].receptive_field, rows[n].jump) for n in convs_and_pools] == [
      (f.size, f.jump) for f in expected]
  assert rows["pool5"].receptive_field == 195
  # §3.2: conv2 sees only its own tower's 48 maps, conv3 all 256.
  assert rows["conv2"].weights == 5 * 5 * 48 * 256
  assert rows["conv2"].connections == 27 * 27 * 256 * 5 * 5 * 48
  assert rows["conv3"].weights == 3 * 3 * 256 * 384
  assert rows["local_response_norm_1"].connections == 55 * 55 * 96 * 5
  assert rows["pool1"].connections == 27 * 27 * 96 * 9


def test_blocks_are_indented_summed_and_in_execution_order():
  rows = _table("resnet18", image_size=64).rows
  names = [row.name for row in rows]
  assert names[:4] == ["conv_init", "bn_init", "max_pool", "stage1_block1"]
  block = next(row for row in rows if row.name == "stage2_block1")
  children = [row for row in rows if row.name.startswith("stage2_block1/")]
  assert [row.name.split("/")[1] for row in children] == ["conv1", "bn1", "conv2", "bn2",
                                                          "conv_proj", "bn_proj"]
  assert block.type == "BasicBlock" and block.depth == 0 and {r.depth for r in children} == {1}
  assert block.params == sum(row.params for row in children)
  assert block.macs == sum(row.macs for row in children)
  assert block.output_shape == (8, 8, 128) and block.units == 8 * 8 * 128
  # The main path (3x3/2, 3x3) is wider than the 1x1/2 projection.
  before = next(row for row in rows if row.name == "stage1_block2")
  assert block.receptive_field == before.receptive_field + 2 * before.jump + 2 * 2 * before.jump
  assert block.jump == 2 * before.jump
  assert rows[-2].name == "head" and rows[-3].type == "global_avg_pool"


def test_option_a_shortcuts_and_inception_branches():
  rows = _rows("resnet20")
  # A strided slice (option A) keeps the jump equal to the main path's.
  assert rows["stage2_block1"].jump == 2 and rows["stage3_block1"].jump == 4
  inception = _rows("googlenet", image_size=_small("googlenet"))
  branches = [name.split("/")[1] for name in inception if name.startswith("inception3a/")]
  assert branches == ["1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "max_pool", "pool_proj"]
  assert inception["inception3a"].output_shape[-1] == 64 + 128 + 32 + 32
  assert inception["inception3a"].receptive_field == inception["inception3a/5x5"].receptive_field


def test_locally_connected_and_within_map_normalisation():
  rows = _rows("cifar_convnet_11pct")
  assert rows["local3"].type == "local"
  assert rows["local3"].connections == rows["local3"].weights == 6 * 6 * (3 * 3 * 64) * 64
  norms = _rows("cifar_convnet_18pct")
  assert [n for n in norms if "norm" in n] == ["within_map_norm_1", "within_map_norm_2"]
  assert norms["within_map_norm_1"].connections == 16 * 16 * 32 * 9


# --- The command line ------------------------------------------------------------------------

def test_summary_json_is_the_table(capsys):
  assert cli.main(["summary", "lenet5", "--format", "json"]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert all(list(row) == list(summary_lib.COLUMNS) for row in rows)
  assert rows[0] == {"name": "C1", "type": "conv", "output_shape": [28, 28, 6], "units": 4704,
                     "weights": 150, "biases": 6, "params": 156, "connections": 117600,
                     "macs": 117600, "receptive_field": 5, "jump": 1}
  assert (rows[-1]["name"], rows[-1]["type"], rows[-1]["params"]) == ("total", "total", 60850)


def test_summary_table_csv_and_overrides(capsys):
  assert cli.main(["summary", "lenet5", "--config.model.c3_connections=full",
                   "--format", "csv"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == ",".join(summary_lib.COLUMNS)
  assert lines[3].startswith("C3,conv,10x10x16,1600,2400,16,2416,240000,")
  assert cli.main(["summary", "resnet20", "--image-size", "16", "--num-classes", "7"]) == 0
  text = capsys.readouterr().out
  assert text.startswith("resnet20 at 16x16x3, 7 classes")
  assert "\n  conv1 " in text and "\ntotal " in text


@pytest.mark.parametrize("argv, message", [
    (["summary"], "give one MODEL or --all"),
    (["summary", "lenet5", "--all"], "give one MODEL or --all"),
    (["summary", "--all", "--image-size", "64"], "--image-size is for one MODEL"),
    (["summary", "lenet5", "--image-size", "0"], "--image-size must be at least 1"),
    (["summary", "lenet5", "--format", "xml"], "invalid choice: 'xml'"),
    (["summary", "lenet5", "--config.optimizer.learning_rate=1"], "only model options"),
    (["summary", "lenet5", "--config.model.name=vgg11"], "only model options"),
    (["summary", "no_such_net"], "unknown model 'no_such_net'"),
    (["summary", "lenet5", "--config.model.no_such_option=1"], "config.model.no_such_option"),
    (["summary", "lenet5", "--config.model.activation=swish"], "unknown activation 'swish'"),
    (["summary", "lenet5", "--image-size", "16"], "needs at least 32x32"),
])
def test_summary_mistakes_are_one_line(argv, message, capsys):
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1


def test_argument_errors_import_no_jax(tmp_path):
  """So `--help` and mistakes answer at once."""
  probe = ("import sys; from cnnjax import cli; "
           "statuses = [cli.main(['summary', 'lenet5', '--all']), "
           f"cli.main(['plot', {str(tmp_path / 'none')!r}, '--out', {str(tmp_path)!r}])]; "
           "print(statuses, sorted(m for m in ('jax', 'matplotlib', 'tensorflow') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                       check=True, timeout=120).stdout
  assert out.strip() == "[2, 2] []"


# --- plot ------------------------------------------------------------------------------------

def _workdir(path, records):
  path.mkdir()
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  return path


RECORDS = [
    {"step": 10, "epoch": 0.5, "train/loss": 2.0, "train/top1_error": 0.8,
     "train/learning_rate": 0.1},
    {"step": 20, "epoch": 1.0, "train/loss": 1.0, "train/top1_error": 0.4,
     "train/learning_rate": 0.01},
    {"step": 20, "epoch": 1.0, "eval/loss": 1.2, "eval/top1_error": 0.5, "eval/top5_error": 0.1},
]


def test_plot_writes_one_png_and_leaves_workdirs_alone(tmp_path, capsys):
  first = _workdir(tmp_path / "relu", RECORDS)
  second = _workdir(tmp_path / "tanh", RECORDS[:2])
  with (second / "metrics.jsonl").open("a") as file:
    file.write('{"step": 30, "train/lo')  # A torn last line: a run still writing.
  before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
  out = tmp_path / "plots"
  assert cli.main(["plot", str(first), str(second), "--out", str(out), "--x", "epoch"]) == 0
  assert capsys.readouterr().out.strip() == f"wrote {out / 'curves.png'}"
  assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert {path: path.stat().st_mtime_ns for path in before} == before
  assert sorted(p.name for p in first.iterdir()) == ["metrics.jsonl"]


def _sweep(root):
  """A sweep's directory: two variants of two seeds, and a tuning trial."""
  for variant, offset in (("relu", 0.0), ("tanh", 0.2)):
    for seed in (0, 1):
      _workdir_at(root / variant / f"seed{seed}", [
          {**record, **{key: value + offset + 0.1 * seed for key, value in record.items()
                        if key.endswith("top1_error")}} for record in RECORDS])
  _workdir_at(root / "tuning" / "relu" / "learning_rate=0.02" / "seed1000", RECORDS)
  return root


def _workdir_at(path, records):
  path.parent.mkdir(parents=True, exist_ok=True)
  return _workdir(path, records)


def test_plot_draws_a_sweeps_variants_and_a_variants_seeds(tmp_path, capsys):
  from cnnjax.analysis import curves

  sweep = _sweep(tmp_path / "sweep")
  groups = curves.read_groups(sweep, "step")
  assert [(group.label, len(group.runs)) for group in groups] == [
      ("sweep/relu", 2), ("sweep/tanh", 2)]  # The tuning trial is not one of them.
  (variant,) = curves.read_groups(sweep / "tanh", "epoch")
  assert variant.label == "tanh" and variant.runs[1]["eval/top1_error"] == [(1.0, pytest.approx(0.8))]
  out = tmp_path / "plots"
  assert cli.main(["plot", str(sweep), str(sweep / "relu" / "seed0"), "--out", str(out),
                   "--metric", "train/loss", "--log-y", "--smooth", "0.6"]) == 0
  assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  capsys.readouterr()
  assert cli.main(["plot", str(sweep), "--out", str(out), "--metric", "train/los"]) == 2
  assert ("--metric 'train/los' is in no run's metrics.jsonl; its keys: eval/loss, "
          "eval/top1_error, eval/top5_error, train/learning_rate, train/loss, "
          "train/top1_error") in capsys.readouterr().err


def test_axes_read_as_plain_numbers_and_whole_steps():
  from matplotlib import pyplot

  from cnnjax import plotting

  figure, axes = pyplot.subplots()
  axes.plot([1, 2, 3], [0.0199, 0.02, 0.0201])  # A learning rate near the end of a cosine.
  axes.set_yscale("log")
  plotting.readable_axes(axes, integer_x=True)
  figure.canvas.draw()
  labels = [label.get_text() for label in axes.get_yticklabels() + axes.get_xticklabels()
            if label.get_text()]
  assert labels and not any("$" in label or "times" in label for label in labels), labels
  assert all(float(label) == int(float(label)) for label in
             (label.get_text() for label in axes.get_xticklabels()) if label)
  assert any(0.0199 <= float(label.get_text()) <= 0.0201 for label in axes.get_yticklabels()
             if label.get_text())
  pyplot.close(figure)


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a directory"),
    ("empty", "holds no records yet"),
    ("no_metrics", "holds no run with a metrics.jsonl, nor does any folder in it"),
    ("no_epoch", "has records without an epoch"),
    ("inside", "is inside the workdir"),
])
def test_plot_mistakes_are_one_line(case, message, tmp_path, capsys):
  workdir = tmp_path / "run"
  if case == "empty":
    _workdir(workdir, [])
  elif case == "no_metrics":
    workdir.mkdir()
  elif case == "no_epoch":
    _workdir(workdir, [{"step": 1, "train/loss": 1.0}])
  elif case == "inside":
    _workdir(workdir, RECORDS)
  out = workdir / "plots" if case == "inside" else tmp_path / "out"
  argv = ["plot", str(workdir), "--out", str(out)] + (["--x", "epoch"] if case == "no_epoch" else [])
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1
  assert not out.exists()
