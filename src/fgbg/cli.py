"""The `fgbg` command line (its error handling is `fgbg.core.errors.run`, shared with the stages).

    fgbg synth data [--out data] [--bg 20] [--fg 20] [--full]   write the built-in sources
    fgbg export [--dataset dataset/composed] [--out export] [--limit N [--seed S]]   plain image files
    fgbg predict BG FG_BG -o OUT [--checkpoint models/best.pt] [--size N]   mask and depth of your pairs
    fgbg score PAIRS [--checkpoint models/best.pt] [-o score.json]   metrics and baseline on your labelled pairs
    fgbg onnx [--checkpoint models/best.pt] [--out models/model.onnx]   export, checked against PyTorch
    fgbg report [--readme README.md]   regenerate the README's Results section from metrics/
"""

from __future__ import annotations

import argparse
import logging

from fgbg.core.errors import run


def _export(args: argparse.Namespace) -> None:
    from fgbg.dataset.export import export_dataset

    export_dataset(args.dataset, args.out, limit=args.limit, seed=args.seed)


def _predict(args: argparse.Namespace) -> None:
    from fgbg.inference.predict import predict_paths

    predict_paths(args.checkpoint, args.bg, args.fg_bg, args.out, device=args.device, size=args.size)


def _score(args: argparse.Namespace) -> None:
    from fgbg.evaluation.scoring import score_folder

    score_folder(args.checkpoint, args.pairs, args.out, device=args.device, threshold=args.threshold, size=args.size)


def _onnx(args: argparse.Namespace) -> None:
    import json

    from fgbg.inference.onnx import export_onnx

    print(json.dumps(export_onnx(args.checkpoint, args.out), indent=2))


def _report(args: argparse.Namespace) -> None:
    from fgbg.report import update_readme

    changed = update_readme(args.readme, args.metrics, args.by_source)
    logging.getLogger("fgbg.report").info("%s %s", args.readme, "updated" if changed else "already up to date")


def _synth(args: argparse.Namespace) -> None:
    from fgbg.composing.synth import write_default_data

    n_bg, n_fg = (100, 100) if args.full else (args.bg, args.fg)
    write_default_data(args.out, n_bg=n_bg, n_fg=n_fg, seed=args.seed)


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fgbg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write the built-in default sources")
    synth.add_argument("what", choices=["data"])
    synth.add_argument("--out", default="data", help="folder to write bg/, bg_depth/, fg/ into (default: data)")
    synth.add_argument("--bg", type=int, default=20, help="number of backgrounds (default 20, matches data.dvc)")
    synth.add_argument("--fg", type=int, default=20, help="number of foregrounds (default 20, matches data.dvc)")
    synth.add_argument("--full", action="store_true", help="the original scale: 100 bg x 100 fg")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default 0, matches data.dvc)")
    export = sub.add_parser("export", help="write plain image files of a composed dataset")
    export.add_argument("--dataset", default="dataset/composed", help="composed dataset folder")
    export.add_argument("--out", default="export", help="folder for fg_bg/, mask/, depth/ (default: export)")
    export.add_argument("--limit", type=int, default=None, help="only N samples, drawn at random over the sources")
    export.add_argument("--seed", type=int, default=0, help="seed of the --limit draw (default 0)")
    predict = sub.add_parser("predict", help="predict mask and depth for (bg, fg_bg) image pairs")
    predict.add_argument("bg", help="a bg image, or a folder of them")
    predict.add_argument("fg_bg", help="the same scene with the object, or a folder (paired by file name)")
    predict.add_argument("-o", "--out", required=True, help="folder for <name>_mask.png, _depth.png, _depth_preview.png")
    predict.add_argument("--checkpoint", default="models/best.pt")
    predict.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    predict.add_argument("--size", type=int, default=None,
                         help="scale the shorter side to SIZE px first: less detail, less time (default: native)")
    score = sub.add_parser("score", help="metrics and the trivial baseline on your labelled pairs")
    score.add_argument("pairs", help="folder with bg/, fg_bg/, mask/ (0/255) and optional depth/ (16-bit), paired by name")
    score.add_argument("-o", "--out", default="score.json", help="metrics JSON; the worst pairs go to <out stem>_worst.png")
    score.add_argument("--checkpoint", default="models/best.pt")
    score.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    score.add_argument("--threshold", type=int, default=None,
                       help="the baseline's |fg_bg - bg| threshold (default: the best on these pairs)")
    score.add_argument("--size", type=int, default=None, help="scale the shorter side to SIZE px first (default: native)")
    onnx = sub.add_parser("onnx", help="export a checkpoint to ONNX and check it against PyTorch")
    onnx.add_argument("--checkpoint", default="models/best.pt")
    onnx.add_argument("--out", default="models/model.onnx")
    report = sub.add_parser("report", help="regenerate the README's Results section from the metric files")
    report.add_argument("--readme", default="README.md")
    report.add_argument("--metrics", default="metrics/eval.json")
    report.add_argument("--by-source", default="metrics/eval_by_source.json")
    args = parser.parse_args(argv)
    commands = {"synth": _synth, "export": _export, "predict": _predict, "score": _score, "onnx": _onnx, "report": _report}
    commands[args.command](args)


def main(argv: list[str] | None = None) -> None:
    run(_main, argv)


if __name__ == "__main__":
    main()
