"""Dataset building at the original scale, against the original recipe in the same run.

    python benchmarks/bench_dataset.py [--scale full|small] [--workdir DIR] [--workers 2]

full: 100 bg x 100 fg x 2 flips x 20 positions = 400,000 samples at 192 / 96 px.
Baseline (the original notebook's way): PIL paste of fg onto bg, one JPEG file per fg_bg
and one per mask (pasted onto black), no depth, one process; run on a 10% slice.
Measures compose samples/s, size and file count, `dvc add` / `dvc status` time, stats time
and random-access read rate, and prints each against the baseline as a ratio. The two ratios
with goals (compose on 1 process, decoded random reads on 1 core) alternate fgbg and the
baseline for `--rounds` rounds and take medians: these machines drift between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fgbg.composing.build import compose_dataset
from fgbg.composing.compose import placements
from fgbg.composing.sources import load_sources
from fgbg.composing.synth import write_default_data
from fgbg.core.config import ComposeConfig
from fgbg.dataset.stats import dataset_stats
from fgbg.dataset.store import ComposedStore

SCALES = {"full": (100, 100, 192, 96, 20), "small": (20, 20, 192, 96, 5)}


@contextlib.contextmanager
def loopback_cluster(workers: int):
    """A `dask scheduler` and `workers` `dask worker` processes on 127.0.0.1, as on a real cluster; its address."""
    dask = str(Path(sys.executable).parent / "dask")
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "scheduler.json"
        procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
                                   "--scheduler-file", str(file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        while not file.is_file():
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        procs += [subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                                    "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for _ in range(workers)]
        try:
            from distributed import Client

            with Client(address) as client:
                client.wait_for_workers(workers, timeout=60)
            yield address
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


def du(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def baseline_compose(data: Path, out: Path, cfg: ComposeConfig, fraction: float) -> tuple[float, int]:
    """The original recipe on every 1/fraction-th placement; returns (seconds, samples)."""
    src = load_sources(data, cfg.bg_size, cfg.fg_size)
    plan = placements(src, cfg)
    plan = plan.iloc[:: round(1 / fraction)]
    (out / "fg_bg").mkdir(parents=True)
    (out / "mask").mkdir()
    bgs = [Image.fromarray(b) for b in src.bg]
    fgs = {(i, f): Image.fromarray(np.ascontiguousarray(fg[:, ::-1]) if f else fg) for i, fg in enumerate(src.fg) for f in (0, 1)}
    black = Image.new("RGB", bgs[0].size)
    t0 = time.perf_counter()
    for r in plan.itertuples():
        fg = fgs[(r.fg_idx, r.flip)]
        img = bgs[r.bg_idx].copy()
        img.paste(fg, (r.x, r.y), fg)
        name = f"{r.fg}_{r.flip}_{r.bg}_{r.x}_{r.y}"
        img.save(out / "fg_bg" / f"{name}.jpg", quality=cfg.jpeg_quality)
        mask = black.copy()
        mask.paste(Image.new("RGB", fg.size, (255, 255, 255)), (r.x, r.y), fg.getchannel("A"))
        mask.save(out / "mask" / f"{name}.jpg", quality=cfg.jpeg_quality)
    return time.perf_counter() - t0, len(plan)


def dvc_times(target: Path) -> tuple[float, float]:
    """Seconds for `dvc add` then `dvc status` of `target` in a fresh DVC repo around it."""
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    repo = target.parent
    shutil.rmtree(repo / ".dvc", ignore_errors=True)
    subprocess.run([dvc, "init", "--no-scm", "-q", "-f"], cwd=repo, check=True)
    t0 = time.perf_counter()
    subprocess.run([dvc, "add", "-q", target.name], cwd=repo, check=True)
    t1 = time.perf_counter()
    subprocess.run([dvc, "status", "-q"], cwd=repo, check=True)
    t2 = time.perf_counter()
    shutil.rmtree(repo / ".dvc")
    (repo / f"{target.name}.dvc").unlink()
    return t1 - t0, t2 - t1


def read_rate(ds: ComposedStore, n: int) -> float:
    idx = np.random.default_rng(0).integers(0, len(ds), n)
    t0 = time.perf_counter()
    for i in idx:
        ds.read(int(i))
    return n / (time.perf_counter() - t0)


def baseline_read_rate(out: Path, n: int) -> float:
    names = sorted(p.stem for p in (out / "fg_bg").iterdir())
    idx = np.random.default_rng(0).integers(0, len(names), n)
    t0 = time.perf_counter()
    for i in idx:
        for kind in ("fg_bg", "mask"):
            with Image.open(out / kind / f"{names[i]}.jpg") as img:
                np.asarray(img)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=SCALES, default="full")
    ap.add_argument("--workdir", default="/tmp/fgbg-bench")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fg-bg-format", choices=["jpeg", "png"], default="jpeg")
    ap.add_argument("--baseline-fraction", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each ratio's two sides; medians")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    n_bg, n_fg, bg_size, fg_size, positions = SCALES[args.scale]
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_default_data(work / "data", n_bg=n_bg, n_fg=n_fg)
    cfg = ComposeConfig(bg_size=bg_size, fg_size=fg_size, positions=positions, fg_bg_format=args.fg_bg_format,
                        jpeg_quality=90, workers=args.workers)
    res: dict = {"scale": args.scale, "workers": args.workers, "cpus": os.cpu_count(), "fg_bg_format": args.fg_bg_format}

    t0 = time.perf_counter()
    index = compose_dataset(data_dir=work / "data", out_dir=work / "ours" / "composed", cfg=cfg)
    res["compose_s"] = time.perf_counter() - t0
    res["samples"] = len(index)
    res["compose_samples_per_s"] = len(index) / res["compose_s"]
    res["bytes"], res["files"] = du(work / "ours" / "composed")

    # the ratio to the original recipe: 1 process each, alternating, medians of `--rounds` (the machine drifts)
    write_default_data(work / "data10", n_bg=n_bg, n_fg=max(2, n_fg // 10))
    one = dataclasses.replace(cfg, workers=1)
    ours, base = [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        sub = compose_dataset(data_dir=work / "data10", out_dir=work / "1_worker" / "composed", cfg=one)
        ours.append(len(sub) / (time.perf_counter() - t0))
        shutil.rmtree(work / "1_worker")
        shutil.rmtree(work / "base", ignore_errors=True)
        base_s, base_n = baseline_compose(work / "data", work / "base" / "files", cfg, args.baseline_fraction)
        base.append(base_n / base_s)
    res["compose_1_worker_samples_per_s"], res["baseline_samples_per_s"] = float(np.median(ours)), float(np.median(base))
    res["compose_ratio_rounds"] = [o / b for o, b in zip(ours, base)]
    res["baseline_samples"] = base_n
    b_bytes, b_files = du(work / "base" / "files")
    res["baseline_bytes_full_est"] = b_bytes / args.baseline_fraction
    res["baseline_files_full_est"] = b_files / args.baseline_fraction
    # engines on a tenth of the fgs: the LocalCluster, a loopback cluster
    for name, scheduler in (("local_cluster", None), ("loopback_cluster", "loopback")):
        with loopback_cluster(args.workers) if scheduler else contextlib.nullcontext() as address:
            t0 = time.perf_counter()
            sub = compose_dataset(data_dir=work / "data10", out_dir=work / name / "composed", cfg=cfg,
                                  scheduler=address)
            res[f"compose_{name}_samples_per_s"] = len(sub) / (time.perf_counter() - t0)

    res["dvc_add_s"], res["dvc_status_s"] = dvc_times(work / "ours" / "composed")
    res["baseline_slice_dvc_add_s"], res["baseline_slice_dvc_status_s"] = dvc_times(work / "base" / "files")

    ds = ComposedStore(work / "ours" / "composed")
    t0 = time.perf_counter()
    dataset_stats(ds)
    res["stats_s"] = time.perf_counter() - t0
    # reads against the original's two files, and with the record CRC against without: alternating, on a warm
    # page cache (so that neither side gets the disk's first pass), medians of `--rounds`
    unverified = ComposedStore(work / "ours" / "composed", verify_records=False)
    base_dir = work / "base" / "files"
    rounds = [(read_rate(ds, 20000), baseline_read_rate(base_dir, 20000), read_rate(unverified, 20000))
              for _ in range(args.rounds)]
    res["read_samples_per_s_1_core"] = float(np.median([on for on, _, _ in rounds]))
    res["baseline_read_samples_per_s_1_core"] = float(np.median([b for _, b, _ in rounds]))
    res["read_ratio_rounds"] = [on / b for on, b, _ in rounds]
    res["read_unverified_samples_per_s_1_core"] = float(np.median([off for _, _, off in rounds]))
    print(json.dumps(res, indent=2))
    one = res["compose_1_worker_samples_per_s"]
    print(f"compose: {res['samples']} samples in {res['compose_s']:.0f} s = {res['compose_samples_per_s']:.0f}/s "
          f"({args.workers} workers); on a tenth of the fgs, 1 worker {one:.0f}/s against the original recipe's "
          f"{res['baseline_samples_per_s']:.0f}/s (1 process, no depth), medians of {args.rounds} alternating runs: "
          f"ratio {one / res['baseline_samples_per_s']:.2f} (goal 2.5; rounds "
          f"{', '.join(f'{r:.2f}' for r in res['compose_ratio_rounds'])})")
    for name in ("local_cluster", "loopback_cluster"):
        rate = res[f"compose_{name}_samples_per_s"]
        print(f"compose on a tenth of the fgs, {name.replace('_', ' ')} of {args.workers} workers: {rate:.0f}/s; "
              f"ratio to 1 process {rate / one:.2f}")
    print(f"size: {res['bytes'] / 1e9:.2f} GB in {res['files']} files; baseline (est. full) "
          f"{res['baseline_bytes_full_est'] / 1e9:.2f} GB in {res['baseline_files_full_est']:.0f} files, without depth")
    print(f"dvc add / status: {res['dvc_add_s']:.1f} s / {res['dvc_status_s']:.1f} s; baseline 10% slice "
          f"{res['baseline_slice_dvc_add_s']:.1f} s / {res['baseline_slice_dvc_status_s']:.1f} s")
    print(f"stats: {res['stats_s']:.1f} s over {res['samples']} samples")
    print(f"random reads (fg_bg + mask + depth): {res['read_samples_per_s_1_core']:.0f}/s on 1 core; the original's "
          f"fg_bg + mask files {res['baseline_read_samples_per_s_1_core']:.0f}/s; medians of {args.rounds} alternating "
          f"runs: ratio {res['read_samples_per_s_1_core'] / res['baseline_read_samples_per_s_1_core']:.2f} (goal 5; "
          f"rounds {', '.join(f'{r:.2f}' for r in res['read_ratio_rounds'])})")
    on, off = res["read_samples_per_s_1_core"], res["read_unverified_samples_per_s_1_core"]
    print(f"record CRC check: reads at {on:.0f}/s with it, {off:.0f}/s without; ratio {on / off:.3f} (target above 0.95)")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
