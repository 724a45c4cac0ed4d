"""Stage compose: data/ -> dataset/composed (shards, index, bg arrays).

The shards are made on Dask: by default a LocalCluster of `compose.workers` processes; with
`--scheduler tcp://HOST:8786` (or FGBG_DASK_SCHEDULER) the workers of a running cluster, on
any machines. `--out` is a folder or an fsspec URL of shared storage (s3://bucket/composed);
`--write` says who writes the shards (fgbg.composing.build). The bytes are the same either way.
"""

import argparse
import dataclasses
import os

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)

from fgbg.composing.build import WRITERS, compose_dataset
from fgbg.core.config import load_params
from fgbg.core.errors import run


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="source folder (bg/, fg/, optional bg_depth/, fg_mask/, *.zip)")
    ap.add_argument("--out", required=True, help="composed dataset folder to write, or an fsspec URL (s3://...)")
    ap.add_argument("--scheduler", default=os.environ.get("FGBG_DASK_SCHEDULER"),
                    help="address of a running Dask scheduler (default: $FGBG_DASK_SCHEDULER, else a local cluster)")
    ap.add_argument("--workers", type=int, help="local worker processes (default: compose.workers)")
    ap.add_argument("--write", default="auto", choices=WRITERS,
                    help="who writes the shards: workers (the storage must be shared), client (this process; "
                         "workers need no shared storage), auto (workers when the storage is known to be shared: "
                         "a local cluster, or --out as a URL)")
    args = ap.parse_args(argv)
    cfg = load_params(args.params).compose
    if args.workers:
        cfg = dataclasses.replace(cfg, workers=args.workers)
    compose_dataset(data_dir=args.data, out_dir=args.out, cfg=cfg, scheduler=args.scheduler, write=args.write)


if __name__ == "__main__":
    run(main)
