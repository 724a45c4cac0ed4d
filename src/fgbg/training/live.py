"""DVCLive logs of a training run: one folder of curves per run, resumable byte for byte.

`open_live` opens (or, after a crash, reopens) a logger and cuts off the steps that a killed
run logged past its last checkpoint; `log_epoch` writes one epoch's metrics. Rank 0 alone logs.
"""

from __future__ import annotations

from pathlib import Path

from dvclive import Live
from fgbg.core.imageio import atomic_write_bytes


def open_live(path: str | Path, resume_at: int | None) -> Live:
    """A DVCLive logger at `path`; resumed at step `resume_at` (the next epoch) after a crash.

    The steps logged from `resume_at` on (an epoch logged after its checkpoint, before the
    kill) are dropped and the step is set, so that a resumed run's files equal an
    uninterrupted one's. DVCLive's own resume counts from the last step it finds, which
    repeats step 0 and skips one when a run dies in epoch 1.
    """
    live = Live(dir=str(path), dvcyaml=False, save_dvc_exp=False, report=None, resume=resume_at is not None)
    if resume_at is not None:
        for tsv in sorted((Path(path) / "plots" / "metrics").rglob("*.tsv")):
            header, *rows = tsv.read_text().splitlines()
            step_col = header.split("\t").index("step")
            kept = [r for r in rows if int(r.split("\t")[step_col]) < resume_at]
            atomic_write_bytes(tsv, "\n".join([header, *kept, ""]).encode())
        live.step = resume_at
    return live


def log_epoch(live: Live, tr: dict, va: dict, lr: float, size: int) -> None:
    """An epoch's train and val means, its lr and training image size, at the live step."""
    for k, v in tr.items():
        live.log_metric(f"train/{k}", v)
    for k, v in va.items():
        live.log_metric(f"val/{k}", v)
    live.log_metric("lr", lr)
    live.log_metric("image_size", size)
