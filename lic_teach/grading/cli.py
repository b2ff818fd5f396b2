"""The instructor's command line: a folder of submitted notebooks to ``scores.csv``
and a summary per question.

    python -m lic_teach.grading submissions/ --out scores.csv --jobs 4
    (or: make grade SUBMISSIONS=submissions/ JOBS=4)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import sandbox
from .grades import autograder_folder, grade_folder
from .limits import MEMORY_GIB, Limits, available_memory_gib, default_jobs
from .reports import summary_markdown, write_csv


def parse_args(argv=None) -> argparse.Namespace:
    """The command line's options, checked; ``--report`` defaults to the CSV's name with
    ``.md``."""
    parser = argparse.ArgumentParser(
        prog="python -m lic_teach.grading",
        description="Grade a folder of submitted exercise notebooks.",
    )
    parser.add_argument("submissions", help="a folder of submitted .ipynb notebooks")
    parser.add_argument(
        "--out", default="scores.csv", help="the CSV to write (default scores.csv)"
    )
    parser.add_argument(
        "--report",
        help="the per-question summary to write (default: the CSV's name, .md)",
    )
    parser.add_argument(
        "--autograder",
        help="folder of full tests, one chNN subfolder per exercise "
        "(default: exercises/autograder of the repository this package runs from)",
    )
    parser.add_argument(
        "--exercise", help="grade every notebook as this exercise (e.g. ch01)"
    )
    parser.add_argument(
        "--cell-timeout",
        type=int,
        default=120,
        help="seconds a cell may run (default 120)",
    )
    parser.add_argument(
        "--test-timeout",
        type=int,
        default=60,
        help="seconds a question's tests may run (default 60)",
    )
    parser.add_argument(
        "--total-timeout",
        type=int,
        default=900,
        help="seconds a notebook may run (default 900)",
    )
    parser.add_argument(
        "--memory-gib",
        type=float,
        default=MEMORY_GIB,
        help="memory one notebook's kernel may use, in GiB "
        f"(default {MEMORY_GIB:g}; 0: no limit)",
    )
    parser.add_argument(
        "--no-sandbox",
        dest="sandbox",
        action="store_false",
        help="run the kernels without the bubblewrap sandbox (lic_teach.grading."
        "sandbox): a submission can then read the solutions and the other "
        "submissions, reach the network and leave processes behind",
    )
    parser.add_argument(
        "--hidden-seed",
        type=int,
        default=None,
        help="redraw the random inputs of the hidden tests from this seed, which only "
        "you know (default: the inputs the published tests were written with)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="notebooks graded at once "
        "(default: one per CPU core, as many as the memory holds)",
    )
    args = parser.parse_args(argv)
    try:
        args.autograder = autograder_folder(args.autograder)
    except ValueError as error:
        parser.error(str(error))
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.report = args.report or str(Path(args.out).with_suffix(".md"))
    return args


def main(argv=None) -> int:
    """The command line ``python -m lic_teach.grading folder/ [--out scores.csv] [--jobs
    N]``."""
    args = parse_args(argv)
    limits = Limits(
        args.cell_timeout,
        args.test_timeout,
        args.total_timeout,
        args.memory_gib,
        args.sandbox,
        args.hidden_seed,
    )
    if args.sandbox and sandbox.available():
        print(
            f"python -m lic_teach.grading: no sandbox for the kernels: "
            f"{sandbox.available()}; or grade trusted notebooks with --no-sandbox",
            file=sys.stderr,
        )
        return 2
    if not args.sandbox:
        print(
            "warning: --no-sandbox: each notebook's kernel can read the solutions, the "
            "hidden tests and the other submissions, reach the network and leave "
            "processes behind",
            file=sys.stderr,
        )
    jobs = args.jobs or default_jobs(args.memory_gib)
    if args.memory_gib > 0 and jobs * args.memory_gib > available_memory_gib():
        print(
            f"warning: {jobs} kernels at up to {args.memory_gib:g} GiB each could need "
            f"more than the {available_memory_gib():.1f} GiB available; fewer --jobs "
            "or a smaller --memory-gib is safer",
            file=sys.stderr,
        )
    try:
        grades = grade_folder(
            args.submissions, jobs, args.autograder, args.exercise, limits
        )
    except ValueError as error:
        print(f"python -m lic_teach.grading: error: {error}", file=sys.stderr)
        return 2
    write_csv(grades, args.out)
    summary = summary_markdown(grades)
    Path(args.report).write_text(summary)
    for g in grades:
        print(f"{g.submission}: {g.total:g} / {sum(g.possible.values()):g}")
    print(
        f"\n{summary}\nscores written to {args.out}, "
        f"the summary per question to {args.report}"
    )
    return 0
