"""The ``lossbench`` command: ``train`` (a Hydra app), ``eval``, ``report``, ``export`` and ``losses``."""

import argparse
import sys

from lossbench import __version__
from lossbench.errors import UserError

DESCRIPTION = """\
Train image classifiers with different losses, compare them, and diagnose
whether training is healthy.

commands:
  train    train one run, or a sweep with -m; takes Hydra overrides
           (lossbench train --help lists the config groups and defaults)
  eval     evaluate a run's best.pt (or last.pt) again, on its own test set
           or on another dataset with the same classes
  report   curves, comparisons across seeds and a diagnosis of runs, sweeps
           or results folders (report.html, report.md, runs.csv, PNGs)
  export   log runs and sweeps that already ran to MLflow or TensorBoard
  losses   list the losses, or show one loss's formula, knobs and paper

examples:
  lossbench train dataset=digits
  lossbench train -m loss=ce,label_smoothing seed=0,1
  lossbench eval results/runs/2026-11-22/10-00-00_digits_ce dataset.split_seed=1
  lossbench report results/multirun/2026-11-22/10-00-00
  lossbench export mlflow results/multirun/2026-11-22/10-00-00
  lossbench losses label_smoothing
"""


COMMANDS = ("train", "eval", "report", "export", "losses")


def _parser() -> argparse.ArgumentParser:
    choices = "{" + ",".join(COMMANDS) + "}"
    # the commands are listed in the description: argparse's own listing is
    # hidden, and with it their names in the usage line, which is given here
    parser = argparse.ArgumentParser(
        prog="lossbench", usage=f"%(prog)s [-h] [--version] {choices} ...", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lossbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar=choices, help=argparse.SUPPRESS, prog="lossbench")
    commands.add_parser("train", help="train (Hydra overrides follow)", add_help=False)
    # parsed by _eval_parser: its overrides may come before or after its options
    commands.add_parser("eval", help="evaluate a run again", add_help=False)
    report = commands.add_parser("report", help="summarise runs")
    report.add_argument("paths", nargs="+", metavar="PATH", help="a run, a multirun or any folder holding runs")
    report.add_argument("--group-by", default="loss", help="config key to compare by (default: loss; e.g. loss.gamma)")
    report.add_argument("--baseline", help="group to compare the others against, paired by seed (default: ce, "
                                           "where there is a ce group)")
    report.add_argument("--epoch", choices=("selected", "final", "oracle"), default="selected",
                        help="whose numbers the ranking and the comparisons use: selected (default; on validation), "
                             "final, or oracle (the best test epoch: optimistic, marked as such)")
    report.add_argument("--include-unfinished", action="store_true",
                        help="pool failed, interrupted and running runs too (default: shown, not pooled)")
    report.add_argument("--out", help="output directory (default: PATH/report/ for one PATH, ./report/ for several)")
    export = commands.add_parser("export", help="log runs to a tracker")
    export.add_argument("tool", choices=("mlflow", "tensorboard"), help="the tracker: mlflow or tensorboard")
    export.add_argument("paths", nargs="+", metavar="PATH", help="a run, a multirun or any folder holding runs")
    export.add_argument("--tracking-uri", help="mlflow's store (default: MLFLOW_TRACKING_URI, else "
                                               "sqlite:///<output dir>/mlflow.db, the output dir being the folder "
                                               "holding PATH's runs/, multirun/ or search/, else the current one)")
    export.add_argument("--logdir", help="tensorboard's log directory, a folder per run or sweep inside (default: "
                                         "where a training run logs: <sweep>/tensorboard/<job>, <run>/tensorboard)")
    losses = commands.add_parser("losses", help="list the losses or show one")
    losses.add_argument("names", nargs="*", metavar="NAME", help="one or more loss names")
    return parser


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossbench eval", description="Evaluate a trained run's checkpoint again, with the training's "
        "evaluation pass, on its own data or on another dataset with the same classes and channels; written to "
        "RUN_DIR/eval/<checkpoint>-<dataset>[-N]/ (metrics.csv, per_class.csv, calibration.csv, eval.json).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the folder of one run")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="best: the selected epoch's model (best.pt, default); last: the last epoch's (last.pt)")
    parser.add_argument("--out", metavar="DIR",
                        help="output directory (default: RUN_DIR/eval/<checkpoint>-<dataset>[-N])")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="the data it is evaluated on and where it runs: dataset=NAME, dataset.KEY=VALUE, "
                             "trainer.device, trainer.eval_batch_size, trainer.precision, paths.KEY")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after `train` belongs to Hydra (its -m, --cfg, --help, overrides).
    if argv and argv[0] == "train":
        from lossbench.training.hydra_app import train_main

        train_main(argv[1:])
        return 0
    parser = _parser()
    if argv and argv[0] == "eval":
        args = _eval_parser().parse_intermixed_args(argv[1:])
        args.command = "eval"
    else:
        args = parser.parse_args(argv)
    try:
        if args.command == "losses":
            from lossbench.losses.describe import describe_loss, list_losses

            print("\n\n".join(describe_loss(name) for name in args.names) if args.names else list_losses())
        elif args.command == "eval":
            from lossbench.evaluation.evaluate import eval_main

            eval_main(args.run_dir, args.checkpoint, args.out, args.overrides)
        elif args.command == "report":
            from lossbench.report.build import report_main

            report_main(args.paths, args.out, args.group_by, args.baseline, args.epoch, args.include_unfinished)
        elif args.command == "export":
            from lossbench.tracking.export import export_main

            export_main(args.tool, args.paths, args.tracking_uri, args.logdir)
        else:
            parser.print_help()
    except UserError as e:
        print(f"lossbench {args.command}: error: {e}", file=sys.stderr)
        return UserError.exit_code
    return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
