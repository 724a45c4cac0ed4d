"""dvc.yaml's deps of each stage are exactly the fgbg modules its script imports.

A module that a stage imports but does not list lets `dvc repro` call stale results up to
date; a module that it lists but does not import reruns the stage for nothing (changing
the model must not recompose the dataset), and so does a folder dep holding such a module. The imports are read from the source and
followed transitively: those at module level and those inside functions (compose imports
fgbg.composing.teacher only when depth is `teacher`, and then it decides the bytes).
"""

import ast
import re
from pathlib import Path

import pytest

from fgbg.core.config import read_yaml
from tests.conftest import ROOT

SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """fgbg modules imported anywhere in the file at `path`."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(SRC).with_suffix("").parts[:-1]) if path.is_relative_to(SRC) else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([p for p in parts if p] + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] == "fgbg"}


def import_closure(script: Path) -> set[Path]:
    """Every fgbg source file that running `script` executes at import time."""
    files: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # a package's __init__ runs before its modules
                found = module_file(".".join(parts[:k]))
                if found and found not in files:
                    files.add(found)
                    todo.append(found)
    return files


def stage_scripts_and_deps(stage: dict) -> tuple[list[Path], set[str]]:
    cmd = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
    scripts = [ROOT / s for s in re.findall(r"stages/\w+\.py", cmd)]
    deps = {d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])}
    return scripts, deps


STAGES = read_yaml(ROOT / "dvc.yaml")["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_exactly_the_modules_it_imports(name):
    scripts, deps = stage_scripts_and_deps(STAGES[name])
    assert scripts, f"stage {name}: no stages/*.py script in its cmd"
    needed = set()
    for script in scripts:
        assert str(script.relative_to(ROOT)) in deps, f"stage {name}: its script {script} is not a dep"
        needed |= {str(f.relative_to(ROOT)) for f in import_closure(script) | {script.parent / "_src.py"}}
        needed.add(str(script.relative_to(ROOT)))

    def covered(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)

    missing = sorted(f for f in needed if not covered(f))
    assert not missing, f"stage {name} imports these but dvc.yaml does not list them as deps: {missing}"
    code_deps = {d for d in deps if d.startswith(("src/", "stages/"))}
    unused = sorted(f for d in code_deps for f in files_under(d) if f not in needed)
    assert not unused, f"stage {name} lists code deps covering files it never imports (they rerun it for nothing): {unused}"


def files_under(dep: str) -> set[str]:
    """The files a dvc.yaml dep covers: itself, or for a folder every file in it (bytecode aside)."""
    path = ROOT / dep
    if not path.is_dir():
        return {dep}
    return {str(f.relative_to(ROOT)) for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts}


def test_the_closure_follows_imports_transitively():
    closure = {f.name for f in import_closure(ROOT / "stages" / "train.py")}
    assert {"train.py", "trainer.py", "metrics.py", "config.py", "errors.py", "registry.py", "store.py"} <= closure
    assert "synth.py" not in closure and "predict.py" not in closure and "cli.py" not in closure
    assert "teacher.py" in {f.name for f in import_closure(ROOT / "stages" / "compose.py")}  # imported in a function
