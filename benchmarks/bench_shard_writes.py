"""Who writes the shards on a cluster: the client (each worker sends a shard's bytes back) or the
workers themselves, straight to the shared storage; both in the same run.

    python benchmarks/bench_shard_writes.py [--workers 2] [--rounds 3] [--scales tenth full]

A loopback Dask cluster (a `dask scheduler` and `--workers` `dask worker` processes on 127.0.0.1,
as bench_dataset.py starts) composes the original scale, 100 bg x 100 fg x 2 flips x 20 positions
at 192 / 96 px with JPEG fg_bg (as bench_dataset.py), on a tenth of the fgs (40k samples) and on all
of them (400k), with each writer in turn for `--rounds` rounds; it prints the medians and the ratio
workers / client, and checks that both writers gave the same bytes. Here the "shared storage" is
this machine's disk, which client and workers share; on a real cluster the client's writes also
cross the network once more.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from bench_dataset import loopback_cluster

from fgbg.composing.build import compose_dataset
from fgbg.composing.synth import write_default_data
from fgbg.core.config import ComposeConfig

SCALES = {"tenth": 10, "full": 100}  # fgs, with 100 bgs
WRITERS = ("client", "workers")


def same_bytes(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/fgbg-bench-writes")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each writer; medians")
    ap.add_argument("--scales", nargs="+", choices=SCALES, default=list(SCALES))
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    cfg = ComposeConfig(bg_size=192, fg_size=96, positions=20, fg_bg_format="jpeg", jpeg_quality=90,
                        workers=args.workers)
    res: dict = {"workers": args.workers, "rounds": args.rounds}
    with loopback_cluster(args.workers) as address:
        for scale in args.scales:
            data = work / f"data_{scale}"
            write_default_data(data, n_bg=100, n_fg=SCALES[scale])
            rates: dict[str, list[float]] = {w: [] for w in WRITERS}
            for r in range(args.rounds):
                for writer in WRITERS if r % 2 == 0 else WRITERS[::-1]:
                    out = work / f"{scale}_{writer}" / "composed"
                    shutil.rmtree(out, ignore_errors=True)
                    t0 = time.perf_counter()
                    index = compose_dataset(data_dir=data, out_dir=out, cfg=cfg, scheduler=address, write=writer)
                    rates[writer].append(len(index) / (time.perf_counter() - t0))
            res[scale] = {"samples": len(index), **{f"{w}_samples_per_s": float(np.median(rates[w])) for w in WRITERS},
                          **{f"{w}_rounds": rates[w] for w in WRITERS},
                          "same_bytes": same_bytes(work / f"{scale}_client" / "composed",
                                                   work / f"{scale}_workers" / "composed")}
            shutil.rmtree(work / f"{scale}_client")
            shutil.rmtree(work / f"{scale}_workers")
            shutil.rmtree(data)
    print(json.dumps(res, indent=2))
    for scale in args.scales:
        r = res[scale]
        client, workers = r["client_samples_per_s"], r["workers_samples_per_s"]
        print(f"{scale} ({r['samples']:,} samples, {args.workers} workers on a loopback cluster): the workers write "
              f"{workers:,.0f}/s, the client writes {client:,.0f}/s; ratio workers / client {workers / client:.2f} "
              f"(medians of {args.rounds} alternating rounds); same bytes: {r['same_bytes']}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
