"""cnnjax's modules import one another without a cycle, counting the imports
inside functions too: an import moved into a function to dodge a cycle still
makes the two modules depend on each other, and the next import moved back to
the top fails at import time."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "cnnjax"


def import_graph(root: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
  """Module -> the package's modules it imports anywhere in its file
  (`from pkg import module` imports the module, `from pkg import name` the package)."""
  files = {}
  for path in root.rglob("*.py"):
    parts = path.relative_to(root.parent).with_suffix("").parts
    files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  graph = {}
  for module, path in files.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        imported |= {alias.name for alias in node.names if alias.name in files}
      elif isinstance(node, ast.ImportFrom) and node.module in files:
        names = {f"{node.module}.{alias.name}" for alias in node.names}
        imported |= names & files.keys()
        if names - files.keys():
          imported.add(node.module)
    graph[module] = imported - {module}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One cycle for each edge that closes one (depth-first search); [] when acyclic."""
  state, found = {}, []

  def visit(module: str, stack: list[str]) -> None:
    state[module] = "open"
    stack.append(module)
    for other in sorted(graph.get(module, ())):
      if state.get(other) == "open":
        found.append(stack[stack.index(other):] + [other])
      elif other not in state:
        visit(other, stack)
    stack.pop()
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [])
  return found


def test_no_module_imports_itself_through_others():
  graph = import_graph()
  assert len(graph) > 90 and sum(map(len, graph.values())) > 250  # It reads the package.
  assert cycles(graph) == []


def test_an_import_inside_a_function_closes_a_cycle(tmp_path):
  package = tmp_path / "cnnjax"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "a.py").write_text("from cnnjax import b\n")
  (package / "b.py").write_text("def f():\n  from cnnjax.a import g\n")
  assert cycles(import_graph(package)) == [["cnnjax.a", "cnnjax.b", "cnnjax.a"]]
