"""Put this checkout's src/ first on sys.path, so that a stage runs the code beside it.

DVC runs queued experiments (`dvc exp run --queue`) in copies of the repository. Without
this, `import fgbg` there would load the editable install, i.e. the main checkout's src/,
which may have changed since the experiment was queued.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
