"""Every `cnnjax` command in README.md and docs/ is checked without running it.

Each logical line of a fenced code block other than printed output (a
block fenced as ```text) (`$ ` prompts dropped, `\\`
continuations joined, `#` comments removed) is split into simple commands
(at `&&`, `||`, `;`, `|`, `&`, dropping redirections); a simple command
whose program is `cnnjax` (after environment assignments, or after a
launcher such as `srun ...`, or inside a quoted argument such as gcloud's
`--command "cnnjax ..."`) is:
- parsed by the real parser (cnnjax.cli.parser()): the subcommand and its
  options exist, spelt out in full, and the values parse;
- refused if it passes `--config.KEY=VALUE` to a command that takes none;
- given its `--config PATH[:ARG]`: PATH exists, and the file's
  get_config(ARG) accepts ARG;
- given its overrides: they go through cnnjax.config's own machinery
  (`from_command_line`, `with_overrides`: the keys exist, the values have
  their key's type and are possible), `eval`'s through its own check, and
  `summary`'s and `bench`'s against the named model's options.
Scripts a line runs (`python scripts/X.py`, `bash scripts/X.sh`) must exist.
Inline code in prose that starts with `cnnjax ` must name a subcommand and
only options it has (fragments like `cnnjax eval --best` are fine).

Placeholders, the words a user fills in, follow one convention: they are
written in capitals (DIR, FILE, NAME, MODEL, RECIPE, A,B,...) and must still
parse where they stand, as the strings and paths they are (so a number is
written as a number: `--steps 5`, not `--steps N`). A `--config` path with a
placeholder (experiments/ablations/NAME.py) must match at least one file,
and its get_config is not run; nor is it for an ARG with a placeholder or
naming a workdir under runs/ (fine-tuning's source, made by an earlier
command). Shell variables ($i, ${VAR}) stand for a
number. docs/cli.md is generated from the parser itself
(tests/test_docs_cli.py) and is not read here. Nothing is run, and parsing
imports no JAX; the model options come from the registry (cnnjax.models).
"""

import argparse
import re
import shlex

import doc_pages
import ml_collections
import pytest
from helpers import script

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.workdir import config_file

PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]*[A-Z]\b")
SHELL_VARIABLE = re.compile(r"\$\{?\w+\}?")
SEPARATORS = {"&&", "||", ";", "|", "&", ";;"}
REDIRECTIONS = {">", ">>", "<", ">&", "&>"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
WORKDIRS = "runs/"  # The docs' workdirs: an ARG there is made by an earlier command.
SCRIPT = re.compile(r"^(scripts|experiments|\.ci)/\S+$")


def _simple_commands(line: str) -> list[list[str]]:
  lexer = shlex.shlex(SHELL_VARIABLE.sub("1", line), posix=True, punctuation_chars=";&|<>")
  lexer.whitespace_split, lexer.commenters = True, "#"
  commands, current, tokens = [], [], iter(lexer)
  for token in tokens:
    if token in SEPARATORS:
      commands.append(current)
      current = []
    elif token in REDIRECTIONS:
      next(tokens, None)
    else:
      current.append(token)
  return [command for command in commands + [current] if command]


def _cnnjax_argv(command: list[str]) -> list[list[str]]:
  """The argument lists of the cnnjax commands in one simple command."""
  if "cnnjax" in command:
    return [command[command.index("cnnjax") + 1:]]
  found = []
  for token in command:  # gcloud ... --command "cnnjax train ...".
    if token.startswith("cnnjax "):
      found += [argv for inner in _simple_commands(token) for argv in _cnnjax_argv(inner)]
  return found


def _commands():
  """(id, argv, scripts named) for each cnnjax command in a code block."""
  found = []
  for page in doc_pages.pages():
    if doc_pages.name(page) == "docs/cli.md":
      continue
    for block in doc_pages.code_blocks(page):
      if block.output:
        continue
      for number, line in doc_pages.shell_lines(block):
        try:
          commands = _simple_commands(line)
        except ValueError:  # Not shell (printed output with an odd quote).
          continue
        for command in commands:
          program = [token for token in command if not ASSIGNMENT.match(token)][:1]
          scripts = [token for token in command if SCRIPT.match(token)
                     and token.endswith((".py", ".sh")) and program in (["python"], ["bash"])]
          for argv in _cnnjax_argv(command):
            found.append(pytest.param(argv, id=f"{doc_pages.name(page)}:{number}"))
          if scripts:
            found.append(pytest.param(["<script>", *scripts],
                                      id=f"{doc_pages.name(page)}:{number}:script"))
  return found


def _check_experiment(spec: str, overrides: list[tuple[str, str]]):
  """The config of `spec` with `overrides`, or None where the path is a
  placeholder or the ARG names a workdir an earlier command makes."""
  path, _, arg = spec.partition(":")
  if PLACEHOLDER.search(path):
    pattern = PLACEHOLDER.sub("*", path)
    assert list(doc_pages.ROOT.glob(pattern)), f"--config {spec}: no file matches {pattern}"
    return None
  assert (doc_pages.ROOT / path).is_file(), f"--config {spec}: {path} does not exist"
  if PLACEHOLDER.search(arg) or arg.startswith(WORKDIRS):
    return None
  return config_lib.from_command_line(str(doc_pages.ROOT / spec), overrides)


def _check_model_options(model_names: str, overrides: list[tuple[str, str]]) -> None:
  from cnnjax import models

  names = [name for name in model_names.split(",") if name in models.MODELS]
  for name in names or []:
    options = ml_collections.ConfigDict({"model": models.model_defaults(name)})
    for key, text in overrides:
      config_lib.override(options, key, text)
  if not names:  # A placeholder or `all`: the key must be some model's option.
    known = {key for name in models.MODELS for key in models.model_defaults(name)}
    for key, _ in overrides:
      assert key.removeprefix("model.") in known, f"no model has the option {key}"


def _check(argv: list[str]) -> None:
  rest, overrides = cli._split_overrides(argv)
  try:
    args = cli.parser().parse_args(rest)
  except SystemExit as done:  # --help, --version.
    assert done.code == 0
    return
  # argparse takes an unambiguous prefix (--work for --workdir): the docs spell options out.
  options = _subparsers()[args.command]._option_string_actions
  for word in rest[1:]:
    flag = word.split("=")[0]
    assert not flag.startswith("--") or flag in options, (
        f"cnnjax {args.command} has no option {flag} (options: {', '.join(sorted(options))})")
  takes = cli.COMMANDS[args.command].overrides
  assert not (overrides and takes == "none"), f"cnnjax {args.command} takes no overrides"
  if takes == "eval":
    config_file.check_eval_overrides(overrides)
    config = config_lib.base_config()
    for key, text in overrides:
      config_lib.override(config, key, text)
  elif takes == "dataset":
    config = config_lib.base_config()
    for key, text in overrides:
      assert key.startswith("dataset.") and key != "dataset.name", f"{key} is not a dataset key"
      config_lib.override(config, key, text)
  elif takes == "model":
    for key, _ in overrides:
      assert key.startswith(config_lib.MODEL_PREFIX), f"{key} is not a model option"
    _check_model_options(args.model or "", overrides)
  if getattr(args, "config", None):
    config = _check_experiment(args.config, [] if takes == "eval" else overrides)
    if config is not None and args.command == "import-weights":
      assert config.model.name == args.model
  elif args.command == "import-weights":
    from cnnjax.pretrained import import_weights

    config_lib.with_overrides(import_weights.imagenet_eval_config(args.model), overrides)


@pytest.mark.parametrize("argv", _commands())
def test_command_parses_with_its_config_and_overrides(argv):
  if argv[0] == "<script>":
    for script in argv[1:]:
      assert (doc_pages.ROOT / script).is_file(), f"{script} does not exist"
    return
  try:
    _check(argv)
  except UserError as error:
    pytest.fail(f"cnnjax {shlex.join(argv)}: {error}")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
  top = cli.parser()
  return next(action for action in top._actions
              if isinstance(action, argparse._SubParsersAction)).choices


def _inline_commands():
  found = []
  for page in doc_pages.pages():
    if doc_pages.name(page) == "docs/cli.md":
      continue
    for number, line in doc_pages.prose_lines(page):
      for span in re.findall(r"`(cnnjax [^`]+)`", line):
        found.append(pytest.param(span, id=f"{doc_pages.name(page)}:{number}"))
  return found


@pytest.mark.parametrize("span", _inline_commands())
def test_inline_command_names_real_options(span):
  words = span.split()[1:]
  if not words or words[0].startswith("-") or PLACEHOLDER.fullmatch(words[0]):
    assert not words or words[0] in ("--version", "--help") or PLACEHOLDER.fullmatch(words[0])
    return
  subparsers = _subparsers()
  assert words[0] in subparsers, f"`{span}`: no subcommand {words[0]!r}"
  options = set(subparsers[words[0]]._option_string_actions)
  for word in words[1:]:
    flag = word.split("=")[0].strip("[]")
    if flag.startswith("--") and not flag.startswith(cli.OVERRIDE_PREFIX):
      assert flag in options, f"`{span}`: cnnjax {words[0]} has no option {flag}"


def test_the_documentation_has_commands_to_check():
  """So the test cannot pass by finding nothing: the README's commands are found."""
  ids = [param.id for param in _commands()]
  assert sum(id_.startswith("README.md:") for id_ in ids) >= 6
  assert len(ids) >= 40


def test_ci_runs_the_readmes_first_command_and_a_getting_started_block():
  """What scripts/run_doc_commands.py (.ci/run) runs end to end: the marked blocks."""
  marked = script("run_doc_commands").marked_blocks()
  assert [page for page, _, _ in marked] == ["README.md", "docs/getting-started.md"]
  assert "cnnjax train --config experiments/lenet5_digits.py --workdir runs/lenet5_digits" in (
      marked[0][2])
  assert marked == [(doc_pages.name(block.page), block.lines[0][0] - 1,
                     "\n".join(line for _, line in block.lines) + "\n")
                    for page in doc_pages.pages() for block in doc_pages.code_blocks(page)
                    if block.run_by_ci]
