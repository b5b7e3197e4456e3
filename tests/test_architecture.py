"""The shape of the code: no import circles, and a core free of Rasa's graph classes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

from tests.conftest import ROOT

PACKAGES = ("components", "actions", "benchmarks", "finetune", "scripts")
PLUGIN = "rasa_safe_hybrid"
# Where a message's route runs, above the shared core; the core never imports them.
SIDES = ("nlu", "policies", "actions", "channels", "stores", "review", "init", "__main__")
CORE = ("guardrails", "generation", "retrieval", "embeddings", "config", "emergency", "small_talk", "texts")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "components":  # the plugin's source folder installs as rasa_safe_hybrid
        parts[0] = PLUGIN
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: Set[str]) -> Set[str]:
    """Project modules ``path`` imports anywhere in its body (function-level imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> Dict[str, Set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    graph = {}
    for path in files:
        name = _module_name(path)
        # a package's own __init__ re-exporting its modules is not a circle
        graph[name] = {m for m in _imports(path, modules) if m != name and not name.startswith(m + ".")}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Each strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_the_import_graph_has_no_circle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_plugin_imports_nothing_of_the_repository():
    """The installed package stands alone: no tests, benchmarks, finetune, scripts or project actions;
    and it names itself by its installed name only (a `components.` import would load a second copy)."""
    graph = import_graph()
    plugin = {m: t for m, t in graph.items() if m.split(".")[0] == PLUGIN}
    assert len(plugin) > 40
    outside = {m: sorted(t for t in targets if t.split(".")[0] != PLUGIN) for m, targets in plugin.items()}
    assert {m: t for m, t in outside.items() if t} == {}
    stale = re.compile(r"^\s*(from|import) components\b", re.M)
    for folder in ("components", "actions", "tests", "benchmarks", "finetune", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not stale.search(path.read_text("utf-8")), f"{path.relative_to(ROOT)} imports `components`"


def test_tools_do_not_depend_on_the_tests():
    """The benchmarks and scripts start servers with scripts.harness, which the tests import too."""
    graph = import_graph()
    on_tests = sorted((m, t) for m, targets in graph.items() if m.split(".")[0] in ("benchmarks", "scripts", "finetune")
                      for t in targets if t.split(".")[0] == "tests")
    assert on_tests == []


def test_the_core_never_imports_where_a_message_runs():
    graph = import_graph()
    layer = {m: m.split(".")[1] if m.count(".") else "" for m in graph if m.split(".")[0] == PLUGIN}
    for part in set(layer.values()) - {""}:
        assert part in SIDES + CORE, f"{PLUGIN}.{part} is in no layer of tests/test_architecture.py"
    upward = sorted((m, t) for m, targets in graph.items() if layer.get(m) in CORE
                    for t in targets if layer.get(t) in SIDES)
    assert upward == []


def test_top_level_packages_depend_one_way():
    graph = import_graph()
    packages: Dict[str, Set[str]] = {}
    for module, targets in graph.items():
        top = module.split(".")[0]
        packages.setdefault(top, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    assert cycles(packages) == [], packages


def test_the_core_imports_no_rasa_graph_class_and_no_model_library():
    """guardrails/, generation/ and config import neither rasa.core/nlu/engine nor torch at import time."""
    code = (
        "import sys\n"
        "import rasa_safe_hybrid.guardrails, rasa_safe_hybrid.generation, rasa_safe_hybrid.config\n"
        "bad = sorted({m.split('.')[0] + '.' + m.split('.')[1] if m.startswith('rasa.') else m.split('.')[0]\n"
        "              for m in sys.modules if m.startswith(('rasa.core', 'rasa.nlu', 'rasa.engine', 'torch',\n"
        "                                                    'transformers', 'tensorflow'))})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"imported at import time: {result.stdout.strip()}"
    for folder in ("guardrails", "generation"):
        for path in (ROOT / "components" / folder).rglob("*.py"):
            source = path.read_text("utf-8")
            for forbidden in ("rasa.core", "rasa.nlu", "rasa.engine"):
                assert forbidden not in source, f"{path.relative_to(ROOT)} mentions {forbidden}"
