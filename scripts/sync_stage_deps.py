"""Rewrite each stage's `src/fgbg/...` deps in dvc.yaml to exactly the modules its script imports.

    python scripts/sync_stage_deps.py

tests/test_dvc_deps.py checks the same closure; run this after moving or adding an import, and
review the diff. Only the runs of src/fgbg lines are replaced; comments and other deps stay.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_dvc_deps import STAGES, import_closure, stage_scripts_and_deps  # noqa: E402


def main() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    for name, stage in STAGES.items():
        scripts, _ = stage_scripts_and_deps(stage)
        needed = sorted({str(p.relative_to(ROOT)) for s in scripts for p in import_closure(s)
                         if str(p.relative_to(ROOT)).startswith("src/")})
        start = re.search(rf"^  {name}:\n", text, re.M).end()
        end = re.search(r"^  \w+:\n", text[start:], re.M)
        block = text[start:start + end.start()] if end else text[start:]
        lines = block.splitlines(keepends=True)
        src = [i for i, line in enumerate(lines) if line.strip().startswith("- src/fgbg/")]
        indent = lines[src[0]][: len(lines[src[0]]) - len(lines[src[0]].lstrip())]
        new = lines[: src[0]] + [f"{indent}- {path}\n" for path in needed] + lines[src[-1] + 1:]
        text = text[:start] + "".join(new) + text[start + len(block):]
    (ROOT / "dvc.yaml").write_text(text)


if __name__ == "__main__":
    main()
