"""Parallel grading: one folder of submissions graded with 1, 2 and 4 kernels at once,
in one run.

The folder holds ``--submissions`` notebooks of one exercise, alternately its solution
and the untouched student notebook (a finished and an unfinished student). Each job
count grades the same folder with :func:`lic_teach.grading.grade_folder`; the script
prints the wall time of each, the speed-up over one kernel at a time as a ratio, and
checks that every job count gives the same grades.

    python benchmarks/grading_speedup.py                     # 24 submissions of ch01;
    jobs 1, 2, 4 python benchmarks/grading_speedup.py --exercise ch05 --jobs 1 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from lic_teach import grading

REPO = Path(__file__).resolve().parents[1]


def submissions(folder: Path, exercise: str, count: int) -> None:
    """``count`` notebooks of ``exercise`` in ``folder``: solutions and untouched,
    alternately."""
    solution = REPO / "exercises" / "autograder" / exercise / "solution.ipynb"
    (student,) = (REPO / "exercises" / "student").glob(f"{exercise}_*.ipynb")
    for index in range(count):
        shutil.copy(
            solution if index % 2 == 0 else student,
            folder / f"{exercise}_student{index:03d}.ipynb",
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exercise", default="ch01")
    parser.add_argument("--submissions", type=int, default=24)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    return parser.parse_args(argv)


def main(argv=None) -> dict[int, float]:
    """Print the times and speed-ups; return ``{jobs: seconds}``."""
    args = parse_args(argv)
    jobs_list = sorted(set(args.jobs) | {1})
    seconds, grades = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        submissions(folder, args.exercise, args.submissions)
        for jobs in jobs_list:
            start = time.perf_counter()
            graded = grading.grade_folder(
                folder, jobs=jobs, autograder=REPO / "exercises" / "autograder"
            )
            seconds[jobs] = time.perf_counter() - start
            grades[jobs] = [(g.submission, g.scores) for g in graded]
    if any(grades[jobs] != grades[1] for jobs in jobs_list):
        raise AssertionError("the grades depend on the number of jobs")
    print(
        f"{args.submissions} submissions of {args.exercise} "
        f"on {os.cpu_count()} CPU cores "
        f"(each kernel may use {grading.MEMORY_GIB:g} GiB):"
    )
    print(f"{'jobs':>5} {'seconds':>9} {'s / notebook':>13} {'speed-up':>9}")
    for jobs in jobs_list:
        print(
            f"{jobs:>5} {seconds[jobs]:>9.1f} "
            f"{seconds[jobs] / args.submissions:>13.2f} "
            f"{seconds[1] / seconds[jobs]:>8.2f}x"
        )
    for jobs in jobs_list[1:]:
        print(f"ratio 1 job / {jobs} jobs: {seconds[1] / seconds[jobs]:.2f}")
    print("same grades at every job count")
    return seconds


if __name__ == "__main__":
    main()
