"""The package's layers: lower modules never import higher ones (CONTRIBUTING.md, "Where things live").

data, networks, losses and methods know nothing of evaluation, the report or the reproduction; evaluation
knows nothing of the methods or the training loop. Checked on the source (every import statement, also
those inside functions) and at run time (what importing a lower layer actually loads)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "repro"
LOWER = sorted([*PACKAGE.glob("data/*.py"), PACKAGE / "networks.py", PACKAGE / "losses.py", *PACKAGE.glob("methods/*.py")])
EVALUATION = sorted(PACKAGE.glob("eval/*.py"))
ABOVE_LOWER = ("repro.eval", "repro.report", "repro.reproduce", "repro.launch")
ABOVE_EVALUATION = ("repro.methods", "repro.train", "repro.translate", "repro.reproduce", "repro.report", "repro.launch")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in the file names (absolute, as the package writes them)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from repro import eval`
    return names


def offending(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in forbidden or n.startswith(tuple(f + "." for f in forbidden)))


@pytest.mark.parametrize("path", LOWER, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_layers_do_not_import_evaluation_report_or_reproduction(path):
    assert offending(imported_modules(path), ABOVE_LOWER) == []


@pytest.mark.parametrize("path", EVALUATION, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_evaluation_does_not_import_methods_or_training(path):
    assert offending(imported_modules(path), ABOVE_EVALUATION) == []


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from repro.eval import metrics\n    import repro.report\n")
    assert offending(imported_modules(bad), ABOVE_LOWER) == ["repro.eval", "repro.eval.metrics", "repro.report"]


def test_importing_the_lower_layers_loads_nothing_above_them():
    code = ("import sys, repro.methods, repro.data.loaders, repro.data.cityscapes, repro.train, repro.translate\n"
            "print(sorted(m for m in sys.modules if m.startswith(('repro.eval', 'repro.report', 'repro.reproduce'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
