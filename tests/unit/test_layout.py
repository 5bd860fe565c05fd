"""The layout's rules, checked on the source (ast), not by a linter plugin: which package may
import which, no import cycles between the project's modules, and nothing heavy reachable from the
API at import time. docs/architecture.md describes the layout these rules keep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recsys", "cache", "pipelines", "serving", "dags")

# (importer package, imported package) pairs that are never allowed, with the reason shown on failure
FORBIDDEN = {
    ("recsys", "cache"): "recsys is the pure model library",
    ("recsys", "pipelines"): "recsys is the pure model library",
    ("recsys", "serving"): "recsys is the pure model library",
    ("recsys", "dags"): "recsys is the pure model library",
    ("cache", "pipelines"): "the Redis contract is shared by both sides and depends on neither",
    ("cache", "serving"): "the Redis contract is shared by both sides and depends on neither",
    ("cache", "dags"): "the Redis contract is shared by both sides and depends on neither",
    ("serving", "pipelines"): "the API never imports the offline side",
    ("serving", "dags"): "the API never imports the offline side",
    ("pipelines", "serving"): "the offline side never imports the API (the CLI, which starts it, excepted)",
    ("pipelines", "dags"): "the DAGs call the pipelines, not the other way round",
}
EXCEPTIONS = {("pipelines.cli", "serving")}  # the composition root: `vidrec serve` starts the API
# the numpy user tower (online scoring); text search and its ONNX caption encoder (numpy, onnxruntime)
SERVING_MAY_IMPORT_FROM_RECSYS = {"recsys.online", "recsys.search", "recsys.text_onnx"}
HEAVY = ("tensorflow", "tf_keras", "tensorflow_recommenders", "torch", "pandas", "sentence_transformers", "numba")


def module_files() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            out[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


MODULES = module_files()


def type_checking_only(node: ast.AST) -> bool:
    """An ``if TYPE_CHECKING:`` block: its imports never run (annotations only)."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(path: Path, top_level_only: bool) -> set[str]:
    """Absolute module names ``path`` imports (``from a import b`` yields ``a`` and ``a.b``);
    with ``top_level_only``, only statements run at import time (the module body and the if/try/
    with blocks in it; not function or class bodies). ``if TYPE_CHECKING:`` blocks never count."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if top_level_only:
        nodes: list[ast.AST] = []
        todo: list[ast.AST] = list(tree.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if isinstance(node, ast.If | ast.Try | ast.With | ast.ExceptHandler) and not type_checking_only(node):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    todo.extend(getattr(node, block, []))
    else:
        nodes, todo = [], [tree]
        while todo:
            node = todo.pop()
            nodes.append(node)
            todo.extend(c for c in ast.iter_child_nodes(node) if not type_checking_only(c))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def project_graph(top_level_only: bool) -> dict[str, set[str]]:
    return {m: {d for d in imported(p, top_level_only) if d in MODULES and d != m} for m, p in MODULES.items()}


def test_packages_import_only_what_the_layout_allows():
    broken = []
    for mod, deps in project_graph(top_level_only=False).items():
        pkg = mod.split(".")[0]
        for dep in deps:
            dep_pkg = dep.split(".")[0]
            reason = FORBIDDEN.get((pkg, dep_pkg))
            if reason and (mod, dep_pkg) not in EXCEPTIONS:
                broken.append(f"{mod} imports {dep}: {reason}")
            if pkg == "serving" and dep_pkg == "recsys" and dep not in SERVING_MAY_IMPORT_FROM_RECSYS:
                broken.append(f"{mod} imports {dep}: the API uses recsys.online only")
    assert not broken, "\n".join(sorted(broken))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := dfs(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_find_cycle_finds_a_cycle_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_in_a_cycle():
    """Counting imports inside functions too: a lazy import still ties two modules together."""
    graph = project_graph(top_level_only=False)
    # "a.b" imported as "from a import b" also lists package "a": a package's __init__ is not a cycle
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("entry", ["serving.app", "cache.client", "cache.keys"])
def test_nothing_heavy_is_reachable_from_the_api_at_import_time(entry):
    """What the API process imports when it starts (module bodies, transitively) reaches no deep
    learning framework, no pandas and no numba; those load inside functions, on first use."""
    graph = {m: imported(p, top_level_only=True) for m, p in MODULES.items()}
    seen, todo, heavy = set(), [entry], []
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        for dep in graph.get(mod, ()):
            if dep.split(".")[0] in HEAVY:
                heavy.append(f"{mod} imports {dep}")
            elif dep in MODULES:
                todo.append(dep)
    assert not heavy, heavy
    assert "serving.store" in seen or entry != "serving.app"  # the walk did reach the app's modules


MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_80_lines():
    """A function that long holds several jobs; split it (docs/architecture.md)."""
    long = []
    for mod, path in MODULES.items():
        if mod.split(".")[0] == "dags":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)
