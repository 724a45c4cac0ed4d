"""The house: stage folders over a shared dataset layer over the core, imports running down only.

core/ imports nothing above it; dataset/ (the composed store and its views, which every
stage after compose reads and compose writes) imports only the core; each stage folder
imports the core, dataset/ and itself, never another stage folder. cli.py and report.py
sit on top and may import anything.
"""

import pytest

from tests.conftest import ROOT
from tests.test_dvc_deps import SRC, imported_modules

ALLOWED = {  # folder -> the folders its modules may import
    "core": {"core"},
    "dataset": {"core", "dataset"},
    "composing": {"core", "dataset", "composing"},
    "training": {"core", "dataset", "training"},
    "evaluation": {"core", "dataset", "evaluation"},
    "inference": {"core", "inference"},
}


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None  # fgbg.<folder>.<module>


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_imports_run_down_only(folder):
    for path in sorted((SRC / "fgbg" / folder).glob("*.py")):
        reached = {_folder(name) for name in imported_modules(path)} - {None}
        assert reached <= ALLOWED[folder], f"{path.relative_to(ROOT)} imports from {sorted(reached - ALLOWED[folder])}"


def test_every_module_lives_in_a_folder_but_the_entry_points():
    top = sorted(p.name for p in (SRC / "fgbg").glob("*.py"))
    assert top == ["__init__.py", "cli.py", "report.py"]
    assert sorted(p.name for p in (SRC / "fgbg").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(ALLOWED)
