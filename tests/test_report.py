"""`cnnjax report` and the published numbers it cites (cnnjax.report.papers): the
matching of runs to rows, the table on workdirs written by cnnjax's own
writers, sweeps, unfinished runs, bad directories, and one real digits run."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, markdown_rows, tiny_config
from sweep_fakes import make_run, write_reaching

from cnnjax import cli, models
from cnnjax import config as config_lib
from cnnjax.data import recipes
from cnnjax.errors import UserError
from cnnjax.report import compare as report
from cnnjax.report import papers
from cnnjax.sweep import results as sweep_results
from cnnjax.sweep import summary as sweep_summary
from cnnjax.sweep.spec import Claim, Sweep, Variant
from cnnjax.workdir import config_file as workdir_lib
from cnnjax.workdir import metrics, results, run_log

# --- The published table -----------------------------------------------------------


def test_every_published_row_is_consistent():
  registry = set(models.list_models())
  keys = [row.key for row in papers.PUBLISHED]
  assert len(keys) == len(set(keys))
  for row in papers.PUBLISHED:
    assert row.source in (papers.PAPER, papers.TORCHVISION), row
    assert row.citation.strip() and row.model in registry and row.mode in papers.MODES, row
    assert row.top1_error is not None or row.top5_error is not None, row
    for error in (row.top1_error, row.top5_error):
      assert error is None or 0 < error < 100, row
    if row.top1_error is not None and row.top5_error is not None:
      assert row.top5_error < row.top1_error, row
    assert not row.options or all(isinstance(key, str) for key, _ in row.options), row


def test_no_run_can_meet_two_rows_of_one_source():
  """Rows of one source about one network, data and mode differ in a condition
  both state, so a run's config picks at most one of them."""
  conditions = ("train_scale", "test_scales", "augmentation")
  rows = papers.PUBLISHED
  for index, first in enumerate(rows):
    for second in rows[index + 1:]:
      if (first.source, first.dataset, first.split, first.mode) != (
          second.source, second.dataset, second.split, second.mode) or not (
          papers.names_of(first.model) & papers.names_of(second.model)):
        continue
      options = dict(first.options).keys() & dict(second.options).keys()
      assert any(getattr(first, name) is not None and getattr(second, name) is not None and
                 getattr(first, name) != getattr(second, name) for name in conditions) or any(
          dict(first.options)[key] != dict(second.options)[key] for key in options), (first, second)


def test_torchvision_accuracies_are_converted_to_errors():
  resnet50 = next(row for row in papers.PUBLISHED
                  if row.source == papers.TORCHVISION and row.model == "resnet50")
  assert (resnet50.top1_error, resnet50.top5_error) == (23.87, 7.14)
  assert "ResNet50_Weights.IMAGENET1K_V1" in resnet50.citation and "76.13" in resnet50.citation


# --- Matching a run's config to a row ------------------------------------------------

def _config(model, dataset, split="validation", train="resize", evaluation="resize",
            extra_evals=(), **options):
  return {"model": {"name": model, **options},
          "dataset": {"name": dataset, "eval_split": split, "train_preprocess": train,
                      "eval_preprocess": evaluation},
          "extra_evals": [list(pair) for pair in extra_evals]}


VGG_JITTERED = "resize_shorter(256, 512) | random_crop(224) | flip | pca_lighting(0.1)"
VGG_FIXED = "resize_shorter(256) | random_crop(224) | flip | pca_lighting(0.1)"
VGG_EVALS = (("dense", "dense(384)"), ("dense_multiscale", "dense(256, 384, 512)"))
RESNET_EVALS = (("dense_multiscale", "dense(224, 256, 384, 480, 640)"),)


def _cited(config, mode, split=None):
  split = split or config["dataset"]["eval_split"]
  found = report.published_for(report.shown(config, mode, split, "run"))
  return {source: row and row.citation for source, row in found.items()}


@pytest.mark.parametrize("config, mode, paper, torchvision", [
    (_config("resnet50", "imagenet2012", shortcut="B"), "eval_10crop", "Table 3", None),
    (_config("resnet50", "imagenet2012", shortcut="B"), "eval", None, "ResNet50_Weights"),
    (_config("resnet50", "imagenet2012", shortcut="B"), "eval_ema", None, "ResNet50_Weights"),
    (_config("resnet50", "imagenet2012", split="train", shortcut="B"), "eval", None, None),
    (_config("resnet34", "imagenet2012", shortcut="A"), "eval_10crop", "Tables 2 and 3 (34 A)",
     None),
    (_config("resnet34", "imagenet2012", shortcut="C"), "eval_10crop", "Table 3 (34 C)", None),
    (_config("resnet50", "imagenet2012", shortcut="B", extra_evals=RESNET_EVALS),
     "eval_dense_multiscale", "Table 4", None),
    (_config("resnet50", "imagenet2012", shortcut="B", extra_evals=VGG_EVALS),
     "eval_dense_multiscale", None, None),
    # VGG: Table 3 picks the row by S (and Q = 384 for a jittered S); vgg_d is torchvision's vgg16.
    (_config("vgg_d", "imagenet2012", train=VGG_JITTERED, extra_evals=VGG_EVALS), "eval_dense",
     "Table 3 (S=[256;512], Q=384)", None),
    (_config("vgg_d", "imagenet2012", train=VGG_JITTERED, extra_evals=VGG_EVALS),
     "eval_dense_multiscale", "Tables 4 and 5", None),
    (_config("vgg_d", "imagenet2012", train=VGG_JITTERED, extra_evals=VGG_EVALS), "eval", None,
     "VGG16_Weights"),
    (_config("vgg_d", "imagenet2012", train=VGG_FIXED, extra_evals=(("dense", "dense(256)"),)),
     "eval_dense", "Table 3 (S=256, Q=256)", None),
    # Trained at S = 256 but tested at Q = 384: not a row of Table 3.
    (_config("vgg_d", "imagenet2012", train=VGG_FIXED, extra_evals=VGG_EVALS), "eval_dense",
     None, None),
    # A recipe without a scale op shows no S: no row rather than a wrong one.
    (_config("vgg_d", "imagenet2012", train="random_area_crop_flip", extra_evals=VGG_EVALS),
     "eval_dense", None, None),
    (_config("googlenet", "imagenet2012"), "eval_ema", "Table 3 (1 model, 1 crop)", None),
    # The metric's name, eval_144crop, is the scheme (the recipe: any cnnjax can read).
    (_config("googlenet", "imagenet2012",
             extra_evals=(("144crop", "resize_shorter(256) | ten_crop(224)"),)),
     "eval_144crop_ema", "144 crops", None),
    (_config("alexnet", "imagenet2012", evaluation="resize_shorter(256) | ten_crop(224)"),
     "eval", "Table 2 (1 CNN)", None),
    # CIFAR: with and without augmentation (C10+ / C10), and DenseNet's C10 dropout.
    (_config("densenet_bc100", "cifar10", "test", train="pad_crop_flip", dropout_rate=0.0),
     "eval", "Table 2 (C10+)", None),
    (_config("densenet_bc100", "cifar10", "test", dropout_rate=0.2), "eval", "Table 2 (C10)",
     None),
    (_config("densenet_bc100", "cifar10", "test", dropout_rate=0.0), "eval", None, None),
    (_config("resnet110", "cifar10", "test", train="pad_crop_flip", shortcut="A"), "eval",
     "Table 6", None),
    (_config("cifar_convnet_13pct", "cifar10", "test", train="random_crop_flip",
             evaluation="ten_crop", norm="none"), "eval", "layers-conv-local-13pct.cfg", None),
    (_config("cifar_convnet_13pct", "cifar10", "test", train="random_crop_flip",
             evaluation="ten_crop", norm="cross_map"), "eval", None, None),
    (_config("lenet5", "mnist", "test", train="pad", evaluation="pad"), "eval", "§III.C", None),
    (_config("lenet5", "digits", "test"), "eval", None, None),
])
def test_a_run_meets_the_row_its_config_describes(config, mode, paper, torchvision):
  cited = _cited(config, mode)
  for source, expected in ((papers.PAPER, paper), (papers.TORCHVISION, torchvision)):
    assert (cited[source] is None) == (expected is None), cited
    assert expected is None or expected in cited[source], cited


def test_a_row_kept_out_by_a_condition_is_named_with_it():
  config = _config("vgg_d", "imagenet2012", train=VGG_FIXED, extra_evals=VGG_EVALS)
  misses = report.near_misses(report.shown(config, "eval_dense", "validation", "run"),
                              (papers.PAPER,))
  assert misses == [
      "Simonyan & Zisserman 2015 (VGG), Table 3 (S=256, Q=256): needs test_scales (256,) (the "
      "run's: (384,))",
      "Simonyan & Zisserman 2015 (VGG), Table 3 (S=384, Q=384): needs train_scale (384,) (the "
      "run's: (256,))",
      "Simonyan & Zisserman 2015 (VGG), Table 3 (S=[256;512], Q=384): needs train_scale "
      "(256, 512) (the run's: (256,))"]


def test_recipes_are_read_as_training_reads_them():
  """Through cnnjax.data.recipes: registered names written out, sizes filled in."""
  def ops(text):
    return recipes.parse(text, 224, "train_preprocess")

  assert recipes.canonical(ops(VGG_JITTERED)) == (
      "resize_shorter(256, 512) | random_crop(224) | flip | pca_lighting(0.1)")
  assert recipes.scales(ops(VGG_JITTERED)) == (256, 512) and recipes.augmented(ops(VGG_JITTERED))
  assert recipes.scales(ops("resize_shorter(256) | center_crop(224)")) == (256,)
  assert not recipes.augmented(ops("resize_shorter(256) | center_crop(224)"))
  assert recipes.augmented(ops("resize_shorter(256, 480) | center_crop(224)"))  # Scale jitter.
  assert recipes.augmented(ops("pad_crop_flip")) and not recipes.augmented(ops("resize"))
  assert recipes.scales(ops("resize_center_crop")) == (256,)  # A name, written out.
  assert recipes.scales(ops("dense(256, 384, 512)")) == (256, 384, 512)
  assert report.scheme("eval", ops("dense(384)")) == "eval_dense"
  assert report.scheme("eval", ops("ten_crop")) == "eval_10crop"
  assert report.scheme("eval_dense_multiscale", ()) == "eval_dense_multiscale"


def test_a_new_random_op_makes_a_run_augmented_without_a_change_to_the_report(monkeypatch):
  """CIFAR-10 against CIFAR-10+: an op registered as random in the recipe
  table is augmentation to the report too."""
  config = _config("densenet_bc100", "cifar10", "test", train="cutout(8)", dropout_rate=0.0)
  with pytest.raises(UserError, match="unknown op 'cutout'"):
    _cited(config, "eval")  # Unknown: an error, never "not augmented".
  monkeypatch.setitem(recipes.OPS, "cutout", recipes.OpSpec(("S",), 1, True, "cutout(S)",
                                                            random=True))
  assert "Table 2 (C10+)" in _cited(config, "eval")[papers.PAPER]
  monkeypatch.setitem(recipes.OPS, "cutout", recipes.OpSpec(("S",), 1, True, "cutout(S)"))
  assert _cited(config, "eval")[papers.PAPER] is None  # Not augmented, and no dropout: no row.


def test_the_random_ops_are_the_ones_that_take_seeds():
  """Which ops are random decides each op's seed (cnnjax.data.preprocess):
  changing the set changes every recorded run's augmentation."""
  assert {name for name, spec in recipes.OPS.items() if spec.random} == {
      "resize_shorter", "random_crop", "flip", "pca_lighting", "inception_crop", "photometric"}


# --- Workdirs written as cnnjax writes them -----------------------------------------------

STEPS_PER_EPOCH = 5005  # ImageNet's 1,281,167 training images in batches of 256.
TEN_CROP = "resize_shorter(256) | ten_crop(224)"


def _write_run(workdir, config, evaluations, *, steps_per_epoch, total_steps=None,
               train_time_s=3600.0, parameters=1000):
  """A workdir as `cnnjax train` leaves it: config.json, metrics.jsonl with a
  training and an evaluation record per (step, {metric: value}), and
  results.json when `total_steps` is reached (an unfinished run otherwise)."""
  workdir.mkdir(parents=True)
  workdir_lib.write_config(config, workdir, 0, None)
  writer = metrics.MetricWriter(workdir, True, steps_per_epoch)
  for step, evaluation in evaluations:
    writer.write(step, {"train/loss": 1.5, "train/top1_error": 0.4, "train/top5_error": 0.2,
                        "train/learning_rate": 0.1, "train/images_per_sec": 2500.0})
    writer.write(step, evaluation)
  writer.close()
  last = evaluations[-1][0]
  if total_steps == last:
    results.write(workdir, results.from_workdir(
        workdir, step=last, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
        global_batch=256, train_time_s=train_time_s, images_per_sec=2500.0,
        parameters=parameters))


def _eval(prefix, top1, top5, loss=1.0):
  return {f"{prefix}/loss": loss, f"{prefix}/top1_error": top1, f"{prefix}/top5_error": top5}


def _imagenet_config(model, **options):
  config = config_lib.base_config()
  config.model.name = model
  config.model.update(options)
  config.dataset.name, config.dataset.eval_split = "imagenet2012", "validation"
  config.dataset.image_size = 224
  config.dataset.train_preprocess = ("resize_shorter(256, 480) | random_crop(224) | flip | "
                                     "pca_lighting(0.1)")
  config.dataset.eval_preprocess = "resize_shorter(256) | center_crop(224)"
  config.extra_evals = (("10crop", TEN_CROP),)
  config.batch_size, config.num_epochs = 256, 90.0
  return config


def _resnet50(workdir, total_steps=90 * STEPS_PER_EPOCH, last_epoch=90):
  epochs = [epoch for epoch in (30, 60, 90) if epoch <= last_epoch]
  errors = {30: (0.4210, 0.1905, 0.4012, 0.1788), 60: (0.2512, 0.0781, 0.2391, 0.0713),
            90: (0.2402, 0.0712, 0.2280, 0.0668)}
  _write_run(workdir, _imagenet_config("resnet50", shortcut="B"),
             [(epoch * STEPS_PER_EPOCH, {**_eval("eval", *errors[epoch][:2]),
                                         **_eval("eval_10crop", *errors[epoch][2:])})
              for epoch in epochs],
             steps_per_epoch=STEPS_PER_EPOCH, total_steps=total_steps, train_time_s=266_400.0,
             parameters=25_557_032)


def _report(capsys, *arguments):
  status = cli.main(["report", *map(str, arguments)])
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def _csv_rows(text):
  return list(csv.DictReader(io.StringIO(text)))


def test_resnet50_beside_the_paper_and_torchvision(tmp_path, capsys):
  _resnet50(tmp_path / "resnet50")
  status, out, err = _report(capsys, tmp_path / "resnet50", "--format", "csv")
  assert status == 0 and not err
  single, ten_crop = _csv_rows(out)
  assert (single["evaluation"], single["status"], single["measured"]) == ("eval", "complete",
                                                                         "final")
  assert float(single["top1_error"]) == pytest.approx(24.02)
  assert float(single["torchvision_top1_error"]) == 23.87
  assert float(single["torchvision_top5_error"]) == 7.14
  assert single["torchvision_diff_top1"] == "0.15"  # Rounded: no binary noise in the CSV.
  assert float(single["torchvision_diff_top5"]) == pytest.approx(-0.02)
  assert single["paper_top1_error"] == "" and single["paper_citation"] == ""
  assert ten_crop["evaluation"] == "eval_10crop" and ten_crop["eval_recipe"] == TEN_CROP
  assert (float(ten_crop["paper_top1_error"]), float(ten_crop["paper_top5_error"])) == (22.85, 6.71)
  assert float(ten_crop["paper_diff_top1"]) == pytest.approx(22.80 - 22.85)
  assert "He et al. 2016 (ResNet), Table 3" in ten_crop["paper_citation"]
  assert ten_crop["torchvision_top1_error"] == ""
  assert float(ten_crop["epochs"]) == 90 and float(ten_crop["train_time_s"]) == 266_400
  assert int(ten_crop["step"]) == 90 * STEPS_PER_EPOCH
  assert float(ten_crop["best_top1_error"]) == pytest.approx(22.80)

  status, out, _ = _report(capsys, tmp_path / "resnet50")  # Markdown, the default.
  single, ten_crop = markdown_rows(out)
  assert status == 0 and list(single)[:4] == ["experiment", "model", "dataset", "evaluation"]
  assert [ten_crop[key] for key in ("experiment", "model", "dataset", "evaluation", "status")] == [
      str(tmp_path / "resnet50"), "resnet50", "imagenet2012", "eval_10crop", "complete"]
  assert [ten_crop[key] for key in ("error % (top-1 / top-5)", "best top-1", "paper",
                                    "Δ paper")] == [
      "22.80 / 6.68", "22.80 (step 450450)", "22.85 / 6.71 [2]", "-0.05 / -0.03"]
  assert [single[key] for key in ("error % (top-1 / top-5)", "best top-1", "paper", "Δ paper",
                                  "torchvision", "Δ torchvision")] == [
      "24.02 / 7.12", "24.02 (step 450450)", "", "", "23.87 / 7.14 [1]", "+0.15 / -0.02"]
  assert single["train time"] == ten_crop["train time"] == "74:00:00"
  assert "[2] He et al. 2016 (ResNet), Table 3" in out
  assert "[1] torchvision ResNet50_Weights.IMAGENET1K_V1 (acc@1 76.13, acc@5 92.86)" in out

  status, out, _ = _report(capsys, tmp_path / "resnet50", "--format", "json")
  assert status == 0 and [row["paper_top1_error"] for row in json.loads(out)] == [None, 22.85]


def test_an_unfinished_run_is_shown_with_its_latest_evaluation(tmp_path, capsys):
  _resnet50(tmp_path / "resnet50", last_epoch=60)
  status, out, _ = _report(capsys, tmp_path / "resnet50", "--format", "csv")
  rows = _csv_rows(out)
  assert status == 0 and [row["status"] for row in rows] == ["unfinished", "unfinished"]
  assert rows[1]["measured"] == "latest" and int(rows[1]["step"]) == 60 * STEPS_PER_EPOCH
  assert float(rows[1]["top1_error"]) == pytest.approx(23.91) and rows[1]["train_time_s"] == ""
  assert float(rows[1]["epochs"]) == 60 and float(rows[1]["paper_top1_error"]) == 22.85


def test_a_workdir_not_yet_evaluated_shows_the_numbers_to_expect(tmp_path, capsys):
  """`cnnjax import-weights --model resnet50` before any `cnnjax eval`: the
  torchvision column is filled, the run's own columns are empty."""
  from cnnjax.pretrained import import_weights

  workdir = tmp_path / "tv_resnet50"
  workdir.mkdir()
  config = import_weights.imagenet_eval_config("resnet50")
  (workdir / "config.json").write_text(workdir_lib.as_json(config))
  status, out, err = _report(capsys, workdir, "--format", "csv")
  assert status == 0 and not err
  (row,) = _csv_rows(out)
  assert (row["evaluation"], row["measured"], row["top1_error"], row["top5_error"]) == (
      "eval", "no evaluation yet", "", "")
  assert (float(row["torchvision_top1_error"]), float(row["torchvision_top5_error"])) == (
      23.87, 7.14)


def test_a_sweep_is_expanded_into_its_runs(tmp_path, capsys):
  sweep_dir = tmp_path / "sweep"
  variants = (Variant("b", {"model.shortcut": "B"}), Variant("c", {"model.shortcut": "C"}))
  for variant, top1 in (("b", 0.2460), ("c", 0.2410)):
    shortcut = variant.upper()
    config = _imagenet_config("resnet34", shortcut=shortcut)
    _write_run(sweep_dir / variant / "seed0", config,
               [(100, _eval("eval", top1 + 0.01, 0.08)), (200, _eval("eval_10crop", top1, 0.075))],
               steps_per_epoch=100, total_steps=200 if variant == "b" else 300)
  # The sweep's log of c's attempt: preempted (SIGTERM, exit 75); a rerun resumes it.
  (sweep_dir / "c" / "seed0" / run_log.LOG_FILE).write_text(
      f"{run_log.LOG_START} 2026-11-22T08:00:00 on cpus 0,1: python -m cnnjax train\n"
      f"step 200: eval_10crop/top1_error=0.2410\n{run_log.LOG_EXIT} 75 after 61.0 s\n")
  runs = [sweep_results.RunResult(variant, seed, str(sweep_dir / variant / f"seed{seed}"), [],
                                  "finished") for seed in (0, 1) for variant in ("b", "c")]
  summary = sweep_summary.Summary("experiments/resnet34.py", Sweep(variants), 2, runs, [])
  (sweep_dir / "sweep.json").write_text(json.dumps(
      sweep_summary.as_json(summary, sweep_summary.variant_rows(summary))))
  status, out, _ = _report(capsys, sweep_dir, "--format", "csv")
  rows = _csv_rows(out)
  assert status == 0
  assert [(row["experiment"], row["evaluation"], row["status"]) for row in rows] == [
      (f"{sweep_dir}/b/seed0", "eval", "complete"),
      (f"{sweep_dir}/b/seed0", "eval_10crop", "complete"),
      (f"{sweep_dir}/c/seed0", "eval", "stopped"),
      (f"{sweep_dir}/c/seed0", "eval_10crop", "stopped"),
      (f"{sweep_dir}/b/seed1", "", "not started"),
      (f"{sweep_dir}/c/seed1", "", "not started")]
  assert [row["paper_top1_error"] for row in rows[:4]] == ["", "24.52", "", "24.19"]


def test_evaluations_of_cnnjax_eval_have_rows_of_their_own(tmp_path, capsys):
  """An imported checkpoint evaluated with `cnnjax eval`: no training, one evaluation."""
  workdir = tmp_path / "resnet50_torchvision"
  workdir.mkdir()
  config = _imagenet_config("resnet50", shortcut="B")
  config.extra_evals = ()  # Trained without; `cnnjax eval` was asked for the 10 crops.
  workdir_lib.write_config(config, workdir, 0, None)
  results.record_evaluation(workdir, 0, {
      "split": "validation", "preprocess": "resize_center_crop",
      "extra_evals": [["10crop", "resize_shorter(256) | ten_crop(224)"]], "checkpoint": "latest",
      "half_precision": False,
      "metrics": {**_eval("eval", 0.2388, 0.0713), **_eval("eval_10crop", 0.2249, 0.0652)}})
  status, out, _ = _report(capsys, workdir, "--format", "csv")
  single, ten_crop = _csv_rows(out)
  assert status == 0
  assert (single["status"], single["measured"], single["step"], single["eval_recipe"]) == (
      "no training logged", "cnnjax eval (latest checkpoint)", "0", "resize_center_crop")
  assert single["torchvision_diff_top1"] == "0.01"
  assert ten_crop["eval_recipe"] == "resize_shorter(256) | ten_crop(224)"
  assert ten_crop["paper_diff_top1"] == "-0.36"  # 22.49 - 22.85, ResNet Table 3.


def test_the_markdown_names_what_a_condition_kept_out(tmp_path, capsys):
  config = _imagenet_config("vgg_d")
  config.dataset.train_preprocess = VGG_FIXED
  config.extra_evals = VGG_EVALS
  _write_run(tmp_path / "vgg_d", config, [(100, _eval("eval_dense", 0.27, 0.09))],
             steps_per_epoch=100, total_steps=100)
  status, out, _ = _report(capsys, tmp_path / "vgg_d")
  (row,) = markdown_rows(out)
  assert status == 0 and [row[key] for key in ("evaluation", "status", "measured")] == [
      "eval_dense", "complete", "final, step 100"]
  assert ("Published numbers about the same evaluation that a condition kept out:\n"
          f"- {tmp_path / 'vgg_d'} eval_dense: Simonyan & Zisserman 2015 (VGG), Table 3 (S=256, "
          "Q=256): needs test_scales (256,) (the run's: (384,))") in out


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a directory"),
    ("file", "is not a directory"),
    ("empty", "is neither a workdir (no config.json) nor a sweep (no sweep.json)"),
    ("damaged_results", "results.json is damaged"),
    ("damaged_config", "config.json is damaged"),
    ("damaged_sweep", "sweep.json is damaged"),
    ("damaged_eval", "eval/450450.json is damaged"),
    ("unreadable_recipe", "config.dataset.train_preprocess='resize_shorter(256) | cutout(8)': "
                          "unknown op 'cutout'"),
    ("unreadable_extra_eval", "config.extra_evals['10crop']='ten_crop(224, 2)': ten_crop takes"),
])
def test_a_bad_directory_is_one_line_naming_it(case, message, tmp_path, capsys):
  good, bad = tmp_path / "good", tmp_path / "bad"
  _resnet50(good)
  if case == "file":
    bad.write_text("")
  elif case == "empty":
    bad.mkdir()
  elif case.startswith("damaged"):
    _resnet50(bad)
    name = case.removeprefix("damaged_")
    path = {"results": bad / "results.json", "config": bad / "config.json",
            "sweep": bad / "sweep.json", "eval": bad / "eval" / "450450.json"}[name]
    path.parent.mkdir(exist_ok=True)
    path.write_text('{"status": "compl')
  elif case.startswith("unreadable"):  # A recipe this cnnjax cannot read: never a guess.
    _resnet50(bad)
    config = json.loads((bad / "config.json").read_text())
    if case == "unreadable_recipe":
      config["dataset"]["train_preprocess"] = "resize_shorter(256) | cutout(8)"
    else:
      config["extra_evals"] = [["10crop", "ten_crop(224, 2)"]]
    (bad / "config.json").write_text(json.dumps(config))
  before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
  status, out, err = _report(capsys, good, bad)
  assert status == 2 and out == "" and err.count("\n") == 1
  assert message in err and str(bad) in err
  assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before


def test_the_report_imports_neither_jax_nor_tensorflow(tmp_path):
  _resnet50(tmp_path / "run")
  code = ("import sys\nfrom cnnjax import cli\nassert cli.main(['report', sys.argv[1]]) == 0\n"
          "loaded = {'jax', 'tensorflow', 'flax'} & set(sys.modules)\n"
          "assert not loaded, loaded\n")
  done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], cwd=ROOT,
                        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                        text=True, timeout=60)
  assert done.returncode == 0, done.stderr
  assert "eval_10crop" in done.stdout


# --- The claims table -------------------------------------------------------------------

def _sweep(directory, claim, better: list, worse: list, wall_time_s=None):
  """A sweep written by the sweep's own writer from hand-written runs: each
  seed of `better` and `worse` reaching 0.5 training error at the epoch given
  (None: never in its 4 epochs) and ending at the eval error given."""
  runs = []
  for variant, seeds in ((claim.better, better), (claim.worse, worse)):
    for seed, (epoch, error) in enumerate(seeds):
      run = make_run(directory, variant, seed)
      write_reaching(run, epoch, final=error)
      runs.append(run)
  sweep = Sweep([Variant(claim.better), Variant(claim.worse)], [claim], 0.5)
  spec = f"experiments/ablations/{directory.name}.py:shapes"
  summary = sweep_summary.summarize(sweep, runs, spec, wall_time_s=wall_time_s)
  sweep_summary.write(summary, directory)
  return summary


def _two_sweeps(root):
  faster = _sweep(root / "relu_vs_tanh", Claim(
      "ReLU reaches the target 2x faster", "AlexNet §3.1, Figure 1", "epochs_to_target", "relu",
      "tanh", ratio=2.0), [(0.4, 0.3), (0.6, 0.3), (0.4, 0.3)], [(2.8, 0.3), (None, 0.3),
                                                                  (3.0, 0.3)], wall_time_s=754.0)
  lower = _sweep(root / "nested" / "lrn", Claim(
      "LRN lowers the test error by 2 points", "AlexNet §3.3", "final eval/top1_error", "lrn",
      "no_lrn", difference=0.02), [(0.4, 0.50), (0.4, 0.52), (0.4, 0.51)],
      [(0.4, 0.52), (0.4, 0.55), (0.4, 0.53)])
  (root / "plain_run").mkdir()  # A training workdir: not searched.
  (root / "plain_run" / "config.json").write_text("{}")
  return faster, lower


def test_the_claims_table_gathers_every_sweep_under_the_directories(tmp_path, capsys):
  faster, lower = _two_sweeps(tmp_path / "runs")
  status, out, err = _report(capsys, "--claims", tmp_path / "runs", "--format", "csv")
  assert status == 0 and not err
  rows = _csv_rows(out)
  assert [row["sweep"] for row in rows] == [str(tmp_path / "runs" / "nested" / "lrn"),
                                            str(tmp_path / "runs" / "relu_vs_tanh")]
  lrn, relu = rows
  assert (relu["citation"], relu["verdict"], relu["seeds_better"], relu["seeds_worse"]) == (
      "AlexNet §3.1, Figure 1", "reproduced", "3", "3")
  assert float(relu["effect_low"]) == pytest.approx(faster.claims[0].effect_low)
  assert relu["effect_high"] == "" and float(relu["level"]) == 0.95
  assert (float(relu["train_time_s"]), float(relu["wall_time_s"])) == (75.0, 754.0)
  assert relu["config"] == "experiments/ablations/relu_vs_tanh.py:shapes"
  assert lrn["verdict"] == lower.claims[0].verdict == "inconclusive"
  assert int(lrn["seeds_to_settle"]) == lower.claims[0].seeds_to_settle
  assert lrn["wall_time_s"] == ""

  status, out, _ = _report(capsys, "--claims", tmp_path / "runs" / "relu_vs_tanh",
                           tmp_path / "runs" / "nested")
  relu_row, lrn_row = markdown_rows(out)  # In the order of the directories given.
  assert status == 0
  assert relu_row["measured"] == f"7.05x (95%: ≥ {faster.claims[0].effect_low:.2f}x)"
  assert (relu_row["paper"], relu_row["the paper's"], relu_row["verdict"], relu_row["seeds"],
          relu_row["train time"], relu_row["wall time"]) == (
      "AlexNet §3.1, Figure 1", "2.00x", "reproduced", "3", "0:01:15", "0:12:34")
  low, high = lower.claims[0].effect_low, lower.claims[0].effect_high
  # Worded as the sweep's summary words effects (cnnjax.sweep.spec.effect_text).
  assert lrn_row["measured"] == (f"+2.33 points (95%: {100 * low:+.2f} points to "
                                 f"{100 * high:+.2f} points)")
  assert lrn_row["verdict"] == f"inconclusive (~{lower.claims[0].seeds_to_settle} seeds would " \
                               "settle it)"
  assert lrn_row["setting"] == "`lrn.py:shapes`"

  status, out, _ = _report(capsys, "--claims", tmp_path / "runs", "--format", "json")
  rows = json.loads(out)
  assert [row["verdict"] for row in rows] == ["inconclusive", "reproduced"]
  # The words of the markdown beside the numbers, for tables rendered from the JSON.
  assert [(row["paper_text"], row["measured_text"]) for row in rows] == [
      (lrn_row["the paper's"], lrn_row["measured"]), (relu_row["the paper's"], relu_row["measured"])]


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no sweep (no sweep.json in it or below it)"),
    ("damaged", "sweep.json is damaged"),
    ("missing", "is not a directory"),
])
def test_a_claims_table_with_a_bad_directory_is_one_line_naming_it(case, message, tmp_path,
                                                                   capsys):
  _two_sweeps(tmp_path / "runs")
  bad = tmp_path / "bad"
  if case == "empty":
    bad.mkdir()
  elif case == "damaged":
    bad.mkdir()
    (bad / "sweep.json").write_text('{"claims": [')
  status, out, err = _report(capsys, "--claims", tmp_path / "runs", bad)
  assert status == 2 and out == "" and err.count("\n") == 1
  assert message in err and str(bad) in err


# --- A real run ------------------------------------------------------------------------

def test_a_digits_run_has_its_row_and_no_published_numbers(digits_dir, tmp_path, capsys):
  from cnnjax.training import train

  workdir = tmp_path / "lenet5_digits"
  train.train_and_evaluate(train.plan(tiny_config(digits_dir)), workdir)
  capsys.readouterr()
  finished = results.read(workdir)
  status, out, _ = _report(capsys, workdir, "--format", "csv")
  (row,) = _csv_rows(out)
  assert status == 0
  assert (row["model"], row["dataset"], row["evaluation"], row["status"]) == (
      "lenet5", "digits", "eval", "complete")
  assert int(row["step"]) == finished["step"] == 6
  assert float(row["top1_error"]) == pytest.approx(100 * finished["final_eval"]["eval/top1_error"])
  assert float(row["train_time_s"]) == pytest.approx(finished["train_time_s"])
  assert row["paper_top1_error"] == row["torchvision_top1_error"] == row["paper_citation"] == ""
  status, out, _ = _report(capsys, workdir)
  (row,) = markdown_rows(out)
  assert status == 0 and list(row.values())[:6] == [
      str(workdir), "lenet5", "digits", "eval", "complete", "final, step 6"]
