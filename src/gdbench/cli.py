"""Command line: gdbench lesson, gdbench train, gdbench theory and gdbench timing.

``gdbench lesson`` prints the lesson's log (``tutorial`` is the name of the lesson's data set,
and ``gdbench tutorial`` the same command under its first name).

Errors a user can fix (bad config, missing device, bad dataset) print one line to stderr and
exit with status 2; nothing is written. Torch and pandas load only in the command that needs
them, so ``gdbench --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gdbench.data import DatasetError, parse_dataset
from gdbench.lesson import LOG_EVERY, TUTORIAL_DATASET, lesson_lines, lesson_spec


def _lesson(args: argparse.Namespace) -> int:
    from gdbench.engines import train
    from gdbench.experiment import default_experiment

    run = lesson_spec(engine=args.engine, device=args.device)
    data = {"tutorial": parse_dataset("tutorial", TUTORIAL_DATASET)}
    batch = train([run], data, default_experiment().train_options(record_every=LOG_EVERY))
    for line in lesson_lines(batch, LOG_EVERY):
        print(line)
    return 0


def _train(args: argparse.Namespace) -> int:
    from gdbench import io
    from gdbench.determinism import set_deterministic
    from gdbench.experiment import load_experiment
    from gdbench.pipeline import train_chunks
    from gdbench.tables import concat_frames

    experiment = load_experiment(args.config, devices=args.device or None)
    set_deterministic(args.threads)
    runs = experiment.runs
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(message, file=sys.stderr)

    out = Path(args.output)
    summary_path = Path(args.summary) if args.summary else out.with_name(out.stem + ".summary.parquet")
    summaries = []
    with io.parquet_appender(out, background=True) as trajectories:  # chunk by chunk
        for _, _, pieces, summary in train_chunks(experiment, runs, progress=progress):
            for piece in pieces:  # each written while the next is built
                trajectories.append(piece)
            summaries.append(summary)
    table = concat_frames(summaries)
    io.write_table(table, summary_path)
    diverged = int(table["diverged"].sum())
    print(
        f"trained {len(runs)} runs ({diverged} diverged) in {time.perf_counter() - started:.2f} s; "
        f"wrote {out} ({trajectories.rows} rows) and {summary_path}",
        file=sys.stderr,
    )
    return 0


def _print_theory(args: argparse.Namespace) -> int:
    from gdbench.experiment import load_experiment, resolve
    from gdbench.pipeline import theory_table

    if args.config:
        experiment = load_experiment(args.config, devices=["cpu"])
    else:  # the lesson's data, plain SGD
        only = {"datasets": {"tutorial": TUTORIAL_DATASET}, "optimizers": {"sgd": {"sgd": {}}}}
        experiment = resolve({**only, "grid": {"dataset": ["tutorial"], "seed": [0], "device": ["cpu"]}})
    table = theory_table(experiment, list(experiment.datasets), list(experiment.optimizers))
    print(table.to_string(index=False))
    return 0


def _timing(args: argparse.Namespace) -> int:
    import logging

    from gdbench.experiment import load_experiment, resolve
    from gdbench.timing import measure_plan
    from gdbench.timing.results import timing_csv, write_timing_csv

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    experiment = load_experiment(args.config) if Path(args.config).is_file() else resolve({})
    results = []
    for device in args.device or ["cpu"]:
        results += measure_plan(experiment, device, args.threads)
    if args.out == "-":
        timing_csv(results, sys.stdout)
    else:
        write_timing_csv(results, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gdbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lesson", aliases=["tutorial"], help="print the lesson's log (lr 0.01, 2000 epochs)")
    p.add_argument("--engine", choices=["loop", "batched"], default="loop")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=_lesson)
    p = sub.add_parser("train", help="train a grid (a config file, YAML or JSON)")
    p.add_argument("config", help="config file with datasets:, grid:, training:, analysis:")
    p.add_argument("-o", "--output", required=True, help="trajectory table (.parquet)")
    p.add_argument("--summary", help="summary table (.parquet or .csv); default OUTPUT.summary.parquet")
    p.add_argument("--device", action="append", help="override grid.device (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_train)
    p = sub.add_parser("theory", help="critical and fastest learning rates and the optimum per dataset")
    p.add_argument("config", nargs="?", help="config file (default: the lesson's data)")
    p.set_defaults(func=_print_theory)
    p = sub.add_parser("timing", help="time the engines as a config's timing: section asks (a CSV)")
    p.add_argument("--config", default="config/config.yaml", help="config file with a timing: section")
    p.add_argument("--device", action="append", help="cpu or cuda (repeatable; default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: timing.threads)")
    p.add_argument("--out", default="-", help="CSV to write (default: stdout)")
    p.set_defaults(func=_timing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DatasetError as exc:
        print(f"gdbench: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__name__ in ("ConfigError", "DeviceError"):  # their modules load lazily
            print(f"gdbench: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
