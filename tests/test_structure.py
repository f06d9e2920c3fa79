"""The package's modules import each other in one direction: no cycle, function-level imports included; metric
names are written in one module, at the bottom of the import graph."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: where each installed package's sources live (algorithms/ and rewards/ install inside vaderbench)
SOURCES = {
    "vaderbench": ROOT / "vaderbench",
    "vaderbench.algorithms": ROOT / "algorithms",
    "vaderbench.rewards": ROOT / "rewards",
}


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


def imports_between(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body. A module's own parent packages are left
    out: Python imports them before the module in any case, so they add no order of their own."""
    edges = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        edges[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return edges


def cycle_through(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from `start` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for target in sorted(edges[module]):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_no_module_of_the_package_imports_itself_through_others():
    edges = imports_between(module_files())
    assert "vaderbench.runner.logger" in edges and "vaderbench.algorithms.vader" in edges
    cycles = [cycle for module in sorted(edges) if (cycle := cycle_through(edges, module))]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    stack, seen = [start], set()
    while stack:
        for target in edges[stack.pop()] - seen:
            seen.add(target)
            stack.append(target)
    return seen


def test_the_runner_reaches_nothing_of_the_report():
    """The report reads what the runner wrote; `vaderbench.study`, above both, is what calls the two."""
    edges = imports_between(module_files())
    runner = [m for m in edges if m.startswith("vaderbench.runner.")]
    assert "vaderbench.runner.sweep" in runner and "vaderbench.report.build" in reachable(edges, "vaderbench.study")
    upward = {m: sorted(t for t in reachable(edges, m) if t.startswith("vaderbench.report")) for m in runner}
    assert not {m: found for m, found in upward.items() if found}


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert cycle_through({"a": {"b"}, "b": set()}, "a") is None


def metric_names() -> set[str]:
    """The values of `vaderbench.metrics`' constants, read from its source (no import: no torch)."""
    tree = ast.parse((SOURCES["vaderbench"] / "metrics.py").read_text())
    return {
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def docstrings(tree: ast.AST) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners) and node.body and isinstance(node.body[0], ast.Expr)
    }


def clock_phases(tree: ast.AST) -> set[int]:
    """The names of the clock's phases in `clock.phase("loss")`: a phase, not a metric (that is `time_loss_s`),
    so that a new aligner timing its loss needs no entry below."""
    return {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "phase"
        and node.args
    }


#: string literals equal to a metric name that name something else, with how many times each file writes one
NOT_METRICS = {
    ("vaderbench/timing.py", "loss"): 1,  # a phase of the clock (its metric is `time_loss_s`)
    ("vaderbench/runner/trial.py", "samples"): 1,  # the folder of sample videos
    ("vaderbench/report/build.py", "samples"): 1,  # the report's section of sample videos
}


def test_metric_names_are_written_only_in_vaderbench_metrics():
    names = metric_names()
    assert {"eval_reward_mean", "budget_spent", "loss"} <= names
    found: dict[tuple[str, str], int] = {}
    for path in module_files().values():
        if path == SOURCES["vaderbench"] / "metrics.py":
            continue
        tree = ast.parse(path.read_text())
        skip = docstrings(tree) | clock_phases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in skip:
                key = (path.relative_to(ROOT).as_posix(), node.value)
                found[key] = found.get(key, 0) + 1
    assert found == NOT_METRICS, "import these names from vaderbench.metrics: " + ", ".join(
        f"{path}: {name!r}" for (path, name), count in sorted(found.items()) if NOT_METRICS.get((path, name)) != count
    )


def test_vaderbench_metrics_imports_nothing_of_the_package():
    assert module_files()["vaderbench.metrics"] and imports_between(module_files())["vaderbench.metrics"] == set()
