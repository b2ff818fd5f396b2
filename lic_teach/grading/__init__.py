"""Grading exercise notebooks, instructor side: a folder of submissions to a CSV of
scores. A submission is untrusted code; this subpackage is instructor tooling beside
the book, not part of the compression code.

    python -m lic_teach.grading submissions/ --out scores.csv --jobs 4
    (or: make grade SUBMISSIONS=submissions/ JOBS=4)

Each submission runs in its own fresh Jupyter kernel, in an empty temporary folder,
without Docker; the command line puts each kernel in a bubblewrap sandbox
(:mod:`~lic_teach.grading.sandbox`: no network, nothing of the machine but what it
needs). After the student's cells the kernel only answers questions
(:mod:`~lic_teach.grading.serve`): the full otter tests of the exercise, hidden ones
included (``chNN/qK.py`` in the autograder folder), run one question at a time in a
separate judge process (:mod:`~lic_teach.grading.judge`) that asks the kernel for the
notebook's values and calls, which cross as checked plain data
(:mod:`~lic_teach.grading.values`). Nothing a submission does stops the others:

- every cell of a question must run: a cell that raises, or runs past ``cell_timeout``
  seconds and is interrupted, scores its question zero with a message, and the next
  cells still run (a question's cells are those up to its ``grader.check("qN")``);
- a test that runs past ``test_timeout`` seconds (a student function that never returns)
  fails that question only;
- a submission that kills its kernel scores zero on what the judge had not finished
  asking it, and one that runs past ``total_timeout`` seconds in all scores zero, each
  with a message that says so;
- a kernel may use ``memory_gib`` of memory: past it an allocation fails, the cell
  raises ``MemoryError`` and its question scores zero, and the machine keeps the memory
  the other kernels need;
- a deleted or never defined variable fails the tests that need it, with a message.

A folder is graded ``jobs`` notebooks at a time: by default one per CPU core, and no
more than the available memory holds at ``memory_gib`` each; each kernel gets an equal
share of the cores' threads. The grades come back in file-name order.

One module per concern: :mod:`~lic_teach.grading.limits` (what a notebook may take, how
many at once), :mod:`~lic_teach.grading.kernel` (running a notebook in a kernel with
its judge, in parallel), :mod:`~lic_teach.grading.values`,
:mod:`~lic_teach.grading.serve` and :mod:`~lic_teach.grading.judge` (the two sides of
the wall), :mod:`~lic_teach.grading.sandbox` and :mod:`~lic_teach.grading.cgroup`
(what a kernel can see and take), :mod:`~lic_teach.grading.grades` (a submission's
exercise, questions and scores), :mod:`~lic_teach.grading.reports` (the CSV and the
summary per question), :mod:`~lic_teach.grading.cli` (the command line) and
:mod:`~lic_teach.grading.gradescope` (the entry point of the Gradescope zips). Their
public names are importable from here.
"""

from .cli import main, parse_args
from .grades import (
    CHECKOUT_AUTOGRADER,
    Grade,
    autograder_folder,
    exercise_of,
    grade_folder,
    grade_notebook,
    points,
    question_files,
    questions_of_cells,
    scored,
    tests_of,
)
from .kernel import (
    grading_cell,
    in_parallel,
    kernel_start_lock,
    run_in_kernel,
)
from .limits import (
    DEFAULT_LIMITS,
    MEMORY_GIB,
    Limits,
    available_memory_gib,
    default_jobs,
)
from .reports import question_summary, summary_markdown, write_csv

__all__ = [
    "CHECKOUT_AUTOGRADER",
    "DEFAULT_LIMITS",
    "MEMORY_GIB",
    "Grade",
    "Limits",
    "autograder_folder",
    "available_memory_gib",
    "default_jobs",
    "exercise_of",
    "grade_folder",
    "grade_notebook",
    "grading_cell",
    "in_parallel",
    "kernel_start_lock",
    "main",
    "parse_args",
    "points",
    "question_files",
    "question_summary",
    "questions_of_cells",
    "run_in_kernel",
    "scored",
    "summary_markdown",
    "tests_of",
    "write_csv",
]
