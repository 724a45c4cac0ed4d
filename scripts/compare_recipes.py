"""Training recipes side by side, each a full default-length run scored by `evaluate` on the whole
192 px test images (and on them as JPEG files, `test_files`): the README's depth-recipe and
perturbation tables.

    python scripts/compare_recipes.py depth|perturb [--only NAME ...] [--out logs/recipes] [--score-only]

A recipe is params.yaml with some keys set, written as `dvc exp run -S` takes them (a value is
YAML, and a key given a mapping replaces it whole: `heads={...}` lists every head). Recipes that
change `compose.*`, or that take the data without `bg_depth/` (`data=prior`) or with it for every
other bg only (`data=mixed`, as a user with depth maps for some photos has), compose a dataset
of their own (with its split and stats) under --out; the others train on the pipeline's
`dataset/` (run `dvc repro split stats` first). Every recipe of a set trains the same epochs on
crops of about the same area (192 x 24 strips, 64 px squares), so each gets about the same CPU
time; each prints its training time beside its scores, so that the claim can be checked.
`--score-only` trains nothing and scores each recipe's best.pt under --out again, after a change to how answers
are made or scored (its training time is the one recorded).
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ruamel.yaml import YAML  # noqa: E402

from fgbg.composing.build import compose_dataset  # noqa: E402
from fgbg.core.config import Params, from_dict  # noqa: E402
from fgbg.core.errors import ConfigError, run  # noqa: E402
from fgbg.core.imageio import atomic_write_json  # noqa: E402
from fgbg.core.typed_yaml import read_yaml  # noqa: E402
from fgbg.dataset.split import split_index  # noqa: E402
from fgbg.dataset.stats import dataset_stats  # noqa: E402
from fgbg.dataset.store import ComposedStore  # noqa: E402
from fgbg.evaluation.evaluate import evaluate_model  # noqa: E402
from fgbg.training.train import train_model  # noqa: E402

NO_JPEG = ["train.perturb.jpeg=0"]  # the default's JPEG perturbation off: how the rows before it were measured
BEFORE = ["model.context=none"]  # no column context: how every unet row before it was measured
# each sample's log_l1 on bg_depth or none, where the default takes it on measured bg depth only
EVERYWHERE = ["heads.bg_depth.measured_only=[]"]
NO_LOG = ["heads.bg_depth.losses={l1: 1, ssim: 0.5}"] + EVERYWHERE  # how every row with a bg_depth head before was
LEARNED_HEADS = "heads={mask: {losses: {bce: 1, dice: 1}}, depth: {losses: {l1: 1, ssim: 0.5}}}"
LEARNED = ["model.depth=learned", LEARNED_HEADS, "train.crop=64", "train.crop_height=0"] + NO_JPEG + BEFORE
GC = ("heads={mask: {losses: {bce: 1, dice: 1}}, depth: {losses: {l1: 1}}, "  # ground contact before the alpha head
      "bg_depth: {losses: {l1: 1, ssim: 0.5}}}")
SQUARES = ["train.crop=64", "train.crop_height=0"]
PLATEAU = ["train.scheduler=plateau"]
TWO_STAGE = ["model.name=two_stage", "train.crop=0"]  # the base sees whole images at 48 px (its own context: none)
RECIPES = {
    "depth": {  # what gives the depth its foot: the head, the crops, the schedule, the context, the data
        "learned, 64 px crops, plateau": LEARNED + PLATEAU,
        "learned, 64 px crops, cosine": LEARNED,
        "ground contact, 64 px crops, plateau, depth loss l1": [GC] + SQUARES + PLATEAU + NO_JPEG + BEFORE,
        "ground contact, 192 x 24 strips, plateau, depth loss l1": [GC] + PLATEAU + NO_JPEG + BEFORE,
        "the same, log_l1 0.5 on depth and bg_depth": [GC, "heads.depth.losses.log_l1=0.5",
                                                       "heads.bg_depth.losses.log_l1=0.5"] + PLATEAU + NO_JPEG + BEFORE,
        "strips, cosine, depth loss l1": [GC] + NO_JPEG + BEFORE,
        "strips, cosine, no depth loss": [GC, "heads.depth.losses={}"] + NO_JPEG + BEFORE,
        "strips, cosine, no depth loss, alpha head": NO_JPEG + BEFORE + NO_LOG,
        "and JPEG perturbation: the default before column context": BEFORE + NO_LOG,
        # two stages at about the default's CPU time: a step on whole images costs 1.7x a strip step at a
        # refine share of 0.05, 2.6x at 0.1 (fgbg.training.trainer.Heads.forward, batch 16, this machine)
        "two stage, whole images, refine 0.05, 6 epochs": TWO_STAGE + ["model.refine_share=0.05", "epochs=6"] + NO_LOG,
        "two stage, whole images, refine 0.1, 4 epochs": TWO_STAGE + ["model.refine_share=0.1", "epochs=4"] + NO_LOG,
        "two stage, whole images, refine 0.05, 18 epochs (3x the CPU time)": TWO_STAGE + ["model.refine_share=0.05",
                                                                                         "epochs=18"] + NO_LOG,
        "the default before, with the row channel (model.rows)": BEFORE + ["model.rows=true"] + NO_LOG,
        "column context: the default before log_l1": NO_LOG,
        "column context: the default before log_l1, for 30 epochs (3x the CPU time)": ["epochs=30"] + NO_LOG,
        "column context, log_l1 0.5 on bg_depth": EVERYWHERE,
        "column context, log_l1 0.5 on measured bg depth only: the default (default)": [],
        "column context, log_l1 0.5 on measured bg depth only, for 30 epochs (3x the CPU time)": ["epochs=30"],
        "learned, 64 px crops, plateau, prior-only data": LEARNED + PLATEAU + ["data=prior"],
        "ground contact, 64 px crops, plateau, depth loss l1, prior-only data": [GC] + SQUARES + PLATEAU + NO_JPEG
        + BEFORE + ["data=prior"],
        "ground contact, strips, plateau, depth loss l1, prior-only data": [GC] + PLATEAU + NO_JPEG + BEFORE
        + ["data=prior"],
        "strips, cosine, no depth loss, alpha head, prior-only data": NO_JPEG + BEFORE + NO_LOG + ["data=prior"],
        "the default before column context, prior-only data": BEFORE + NO_LOG + ["data=prior"],
        "column context: the default before log_l1, prior-only data": NO_LOG + ["data=prior"],
        "column context, log_l1 0.5 on bg_depth, prior-only data": EVERYWHERE + ["data=prior"],
        "column context, log_l1 0.1 on bg_depth, prior-only data": EVERYWHERE + ["heads.bg_depth.losses.log_l1=0.1",
                                                                                "data=prior"],
        "column context, log_l1 0.5 on measured bg depth only: the default, prior-only data": ["data=prior"],
        "column context: the default before log_l1, mixed data": NO_LOG + ["data=mixed"],
        "column context, log_l1 0.5 on bg_depth, mixed data": EVERYWHERE + ["data=mixed"],
        "column context, log_l1 0.5 on measured bg depth only: the default, mixed data": ["data=mixed"],
        "two stage, refine 0.05, 6 epochs, prior-only data": TWO_STAGE + ["model.refine_share=0.05", "epochs=6",
                                                                        "data=prior"] + NO_LOG,
    },
    "perturb": {  # each capture perturbation alone, at the recipe's probability, against none (before column context)
        "none": NO_JPEG + BEFORE + NO_LOG,
        "jpeg 0.5 (the default before column context)": BEFORE + NO_LOG,
        "noise 0.4": NO_JPEG + BEFORE + NO_LOG + ["train.perturb.noise=0.4"],
        "blur 0.3": NO_JPEG + BEFORE + NO_LOG + ["train.perturb.blur=0.3"],
        "bg_jitter 0.8": NO_JPEG + BEFORE + NO_LOG + ["train.perturb.bg_jitter=0.8"],
        "misalign 0.3": NO_JPEG + BEFORE + NO_LOG + ["train.perturb.misalign=0.3"],
        "shadow 0.3": NO_JPEG + BEFORE + NO_LOG + ["train.perturb.shadow=0.3"],
        "fg_bg composed as JPEG": NO_JPEG + BEFORE + NO_LOG + ["compose.fg_bg_format=jpeg"],
        "column context: JPEG on every sample (jpeg 1.0)": ["train.perturb.jpeg=1.0"] + NO_LOG,  # the default's answers now
    },
}
DEPTH_KEYS = ("rmse", "mae", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "ssim")
HIGHER = {"delta1", "delta2", "delta3", "ssim"}


def recipe_params(base: dict, sets: list[str]) -> tuple[Params, str]:
    """(params.yaml's dict with `sets` applied, as Params; the data it takes: "" the pipeline's, "prior" or
    "mixed", see `source_data`)."""
    data = json.loads(json.dumps(base))
    which = ""
    for item in sets:
        key, _, text = item.partition("=")
        value = YAML(typ="safe").load(text)
        if key == "data":
            if value not in DATA:
                raise ConfigError(f"data={value}: the data a recipe takes is one of {', '.join(DATA)}")
            which = value
            continue
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return from_dict(Params, data), which


def prepared_dataset(p: Params, data_dir: Path, out: Path) -> tuple[Path, Path, Path]:
    """(composed dataset, split.json, stats.json) of `p`, composed from `data_dir` into `out` once."""
    dataset = out / "composed"
    if not dataset.is_dir():
        compose_dataset(data_dir=data_dir, out_dir=dataset, cfg=p.compose)
    store = ComposedStore(dataset)
    split = split_index(store.index, group_by=p.split.group_by, val_fraction=p.split.val_fraction,
                        test_fraction=p.split.test_fraction, seed=p.split.seed)
    atomic_write_json(out / "split.json", split)
    atomic_write_json(out / "stats.json", dataset_stats(store, split["train"]))
    return dataset, out / "split.json", out / "stats.json"


DATA = ("prior", "mixed")


def source_data(data_dir: Path, out: Path, which: str) -> Path:
    """`data_dir` for data=prior without bg_depth/: every bg takes the ground-plane prior, as a user's photos
    do; for data=mixed with the depth maps of every other bg (sorted by name) only."""
    copy = out / f"data_{which}"
    if not copy.is_dir():
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("bg_depth") if which == "prior" else None)
        for depth_map in sorted((copy / "bg_depth").iterdir())[1::2] if which == "mixed" else ():
            depth_map.unlink()
    return copy


def row(name: str, ev: dict, train_s: float) -> str:
    depth, base = ev.get("depth", {}), ev["baseline"].get("depth", {})
    beats = sum((depth[k] > base[k]) if k in HIGHER else (depth[k] < base[k]) for k in DEPTH_KEYS if k in depth)
    alpha = f" {ev['alpha']['sad']:.3f} |" if "alpha" in ev else " – |"
    return (f"| {name} | {train_s:.0f} | {ev['mask']['iou']:.4f} | {ev['test_files']['mask']['iou']:.4f} |"
            + "".join(f" {depth[k]:.4f} |" for k in ("rmse", "abs_rel", "delta1")) + f" {beats} of 8 |" + alpha)


def by_depth_source(dataset: Path, by_source: dict) -> str:
    """The depth's mean RMSE and delta1 over the test bgs with a measured depth map, and over those on the
    prior (each bg holds as many test samples): what data=mixed shows."""
    index = ComposedStore(dataset).index
    measured = set(index.bg[index.bg_measured])
    parts = []
    for label, keep in (("measured bgs", True), ("prior bgs", False)):
        rows = [m["depth"] for bg, m in by_source["bg"].items() if (bg in measured) == keep]
        if not rows:
            parts.append(f"{label}: none in test")
            continue
        parts.append(f"{label} ({len(rows)}): depth RMSE {sum(r['rmse'] for r in rows) / len(rows):.4f}, "
                     f"delta1 {sum(r['delta1'] for r in rows) / len(rows):.3f}")
    return "; ".join(parts)


HEADER = ("| recipe | train s | IoU | test_files IoU | RMSE | abs_rel | delta1 | beats the bg-depth baseline | "
          "alpha SAD |\n|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", choices=sorted(RECIPES))
    ap.add_argument("--only", nargs="+", help="these recipes of the set (default: all)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data", type=Path)
    ap.add_argument("--dataset", default="dataset", type=Path, help="the pipeline's dataset/ (composed, split, stats)")
    ap.add_argument("--out", default="logs/recipes", type=Path)
    ap.add_argument("--score-only", action="store_true",
                    help="train nothing: score each recipe's best.pt under --out again (after a change to how answers "
                         "are made or scored)")
    args = ap.parse_args(argv)
    recipes = RECIPES[args.set]
    unknown = sorted(set(args.only or ()) - set(recipes))
    if unknown:
        raise ConfigError(f"--only: no recipe {unknown[0]!r} in {args.set}; the recipes: {', '.join(recipes)}")
    base = read_yaml(args.params)
    default = from_dict(Params, base)
    lines = [HEADER]
    for name in args.only or recipes:
        p, which = recipe_params(base, recipes[name])
        work = args.out / args.set / "".join("_" if c == " " else c for c in name if c not in ",:()")
        if args.score_only and not (work / "time.json").is_file():
            raise ConfigError(f"--score-only: {work} holds no finished run of {name!r}; run it first (leave out "
                              "--score-only)")
        work.mkdir(parents=True, exist_ok=True)
        if which or p.compose != default.compose:
            data = source_data(args.data, args.out, which) if which else args.data
            dataset, split, stats = prepared_dataset(p, data, work)
        else:
            dataset, split, stats = args.dataset / "composed", args.dataset / "split.json", args.dataset / "stats.json"
        if args.score_only:
            train_s = json.loads((work / "time.json").read_text())["train_s"]
        else:
            start = time.perf_counter()
            train_model(params=p, dataset_dir=dataset, stats_path=stats, split_path=split, model_dir=work / "models",
                        live_dir=work / "dvclive", metrics_path=work / "train.json")
            train_s = time.perf_counter() - start
            atomic_write_json(work / "time.json", {"train_s": train_s})
        ev = evaluate_model(checkpoint=work / "models" / "best.pt", dataset_dir=dataset, split_path=split,
                            metrics_path=work / "eval.json", plots_dir=work / "plots",
                            by_source_path=work / "eval_by_source.json", params=p)
        lines.append(row(name, ev, train_s))
        print(lines[-1], flush=True)
        if which == "mixed":
            lines.append(f"  {name}: " + by_depth_source(dataset, json.loads((work / "eval_by_source.json").read_text())))
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    run(main)
