"""The package's tiers: a module imports only modules of its own tier or of lower ones, and no import cycle
(CONTRIBUTING.md, "Where things live"). Checked on the source, every import statement counted, also those inside
functions, and at run time (what importing the lower tiers actually loads)."""

import ast
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "repro"

# Lowest first. A module belongs to the first tier with a pattern that matches its name.
TIERS = (
    ("leaves", ("repro", "repro.io", "repro.device", "repro.config", "repro.layout", "repro.done",
                "repro.resources", "repro.translations")),
    ("data and nets", ("repro.data", "repro.data.*", "repro.weights", "repro.networks", "repro.losses", "repro.pool",
                       "repro.schedule", "repro.vgg")),
    ("evaluation", ("repro.eval", "repro.eval.*")),
    ("methods", ("repro.methods", "repro.methods.*", "repro.capture")),
    ("one run", ("repro.checkpoint", "repro.train", "repro.translate", "repro.pretrained")),
    ("a reproduction", ("repro.rows", "repro.verdicts", "repro.report", "repro.report_figures", "repro.check",
                        "repro.reproduce", "repro.reproduce.*", "repro.estimate", "repro.setup_time",
                        "repro.bounds", "repro.results_table", "repro.fidtable", "repro.reproduce_fid")),
    ("commands", ("repro.commands", "repro.commands.*", "repro.cli")),
)


def package_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package at `root` (a folder named for the package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules the file imports, anywhere in it. `from a import b` counts a.b when that is a module,
    else a; a relative import is resolved against the file's package."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:  # `import a.b.c` names a.b.c; a name inside a module
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = package_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def tier_of(module: str, tiers=TIERS) -> int | None:
    for index, (_, patterns) in enumerate(tiers):
        if any(fnmatch(module, pattern) for pattern in patterns):
            return index
    return None


def upward_imports(graph: dict[str, set[str]], tiers=TIERS) -> list[str]:
    """'a (tier) imports b (higher tier)' for every import that goes up."""
    return sorted(f"{m} ({tiers[tier_of(m, tiers)][0]}) imports {i} ({tiers[tier_of(i, tiers)][0]})"
                  for m, imported in graph.items() for i in imported if tier_of(i, tiers) > tier_of(m, tiers))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is one or more import cycles."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layers(graph: dict[str, set[str]]) -> int:
    """The longest chain of imports (a module importing nothing of the package is layer 1); for the report."""
    depth = {}

    def of(v):
        if v not in depth:
            depth[v] = 0  # a cycle would recurse forever; the graph is checked acyclic first
            depth[v] = 1 + max((of(w) for w in graph[v]), default=0)
        return depth[v]

    return max(of(v) for v in graph)


GRAPH = import_graph(PACKAGE)


def test_every_module_has_a_tier():
    assert [m for m in GRAPH if tier_of(m) is None] == []


def test_no_module_imports_a_higher_tier():
    assert upward_imports(GRAPH) == []


def test_no_import_cycle():
    assert cycles(GRAPH) == []
    assert layers(GRAPH) >= len(TIERS) - 1  # what the checker reads is the real graph, not an empty one


def test_the_reproduction_package_imports_downwards_only():
    """repro.reproduce's parts: plan < pipeline; the launcher imports neither (it is handed the work function), and
    only the package's __init__ joins them."""
    parts = {"plan": "repro.reproduce.plan", "pipeline": "repro.reproduce.pipeline",
             "launcher": "repro.reproduce.launcher"}
    inside = {name: GRAPH[module] & set(parts.values()) for name, module in parts.items()}
    assert inside == {"plan": set(), "pipeline": {"repro.reproduce.plan"}, "launcher": set()}
    assert not any("repro.reproduce" in GRAPH[m] for m in parts.values())  # nothing reads back the package's names


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "repro" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "repro"


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": "",
        "config.py": "import json\n",
        "networks.py": "from repro.config import X\n",
        "methods/__init__.py": "",
        "methods/cyclegan.py": "from repro import networks\n\ndef build():\n    from repro.train import loop\n",
        "train.py": "from repro.methods import cyclegan\n",
        "eval/__init__.py": "",
        "eval/fid.py": "def run():\n    import repro.methods.cyclegan\n    from .. import config\n",
    })
    graph = import_graph(package)
    assert graph["repro.methods.cyclegan"] == {"repro.networks", "repro.train"}
    assert graph["repro.eval.fid"] == {"repro.methods.cyclegan", "repro.config"}
    assert upward_imports(graph) == [
        "repro.eval.fid (evaluation) imports repro.methods.cyclegan (methods)",
        "repro.methods.cyclegan (methods) imports repro.train (one run)",
    ]
    assert cycles(graph) == [["repro.methods.cyclegan", "repro.train"]]
    assert cycles({**graph, "repro.methods.cyclegan": {"repro.networks"}}) == []


@pytest.mark.parametrize("command", [["train", "--help"], ["reproduce", "--help"]])
def test_a_command_help_imports_no_torch(command):
    """`repro train --help` and `repro reproduce --help` build their parser from repro/commands/, which leaves
    torch to the run functions: a --help answers at once."""
    code = (f"import sys\nfrom repro.cli import main\ntry:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_importing_the_lower_layers_loads_nothing_above_them():
    code = ("import sys, repro.methods, repro.data.loaders, repro.data.cityscapes, repro.train, repro.translate\n"
            "print(sorted(m for m in sys.modules if m.startswith(('repro.eval', 'repro.report', 'repro.reproduce', "
            "'repro.commands', 'repro.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
