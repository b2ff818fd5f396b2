"""The graded exercises: generated files up to date, solutions full marks, untouched
notebooks zero, a plausible wrong answer rejected for every question, and submissions
that raise, loop, delete variables or kill their kernel graded without stopping the
rest."""

import copy
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
import yaml

from lic_teach import cache, exercises, grading, wrong_answers
from lic_teach.grading import gradescope

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "exercises" / "source").glob("ch*_*.ipynb"))
IDS = [s.name[:4] for s in SOURCES]

pytestmark = pytest.mark.slow

# For each question, a plausible mistake: (text in the solution, what a student wrote
# instead).
WRONG_ANSWERS = {
    "ch01": {
        "q1": ("np.log2(p)", "np.log(p)"),  # wrong log base
        "q2": ("matrix[0] /= np.sqrt(2)", "pass"),  # not orthonormal
        "q3": (
            "10 * math.log10(1 / mse)",
            "10 * math.log10(1 / math.sqrt(mse))",
        ),  # RMSE for MSE
        "q4": ('transform="none"', 'color="rgb"'),
    },  # measured the wrong thing
    "ch02": {
        "q1": ("-np.log2(pmf[", "-np.log(pmf["),  # nats
        "q2": ("max(1, round(p * total))", "round(p * total)"),  # missing clamp
        "q3": ("Fraction(cdf[s], total)", "Fraction(cdf[s + 1], total)"),  # off by one
        "q4": ("8 * len(data) - ideal", "len(data) - ideal / 8"),
    },  # bytes for bits, off by 8x
    "ch03": {
        "q1": ("x / torch.sqrt(norm)", "x / norm"),  # missing square root
        "q2": ("-torch.log2(p).sum()) for p", "-torch.log(p).sum()) for p"),  # nats
        "q3": ("lmbda * 255**2 * mse", "lmbda * 255 * mse"),  # 255 for 255^2
        "q4": ("measured_bpp = 8 * len(data)", "measured_bpp = len(data)"),
    },  # bytes, not bits
    "ch04": {
        "q1": (
            "return y + (torch.round(y) - y).detach()",
            "return torch.round(y)",
        ),  # no gradient
        "q2": ("torch.rand_like(y) - 0.5", "torch.rand_like(y)"),  # U(0, 1)
        "q3": ("(2 * math.tanh(alpha / 2))", "2"),  # not normalized
        "q4": ("p_tilde(torch.round(y))", "p_tilde(torch.floor(y))"),
    },  # floor for round
    "ch05": {
        "q1": ("weight * (y - floor) ** 2", "(y - floor) ** 2"),  # lambda forgotten
        "q2": ("k - torch.sign(k) / 2", "k - 0.5"),  # sign forgotten
        "q3": (
            "for parameter in model.parameters():",
            "for parameter in model.g_a.parameters():",
        ),
        "q4": ("fit_decoder(model, crops, steps=30", "fit(model, crops, steps=30"),
    },  # retrains the encoder
    "ch06": {
        "q1": (
            "torch.exp(torch.linspace(math.log(minimum), math.log(maximum), levels))",
            "torch.linspace(minimum, maximum, levels)",
        ),  # linear spacing
        "q2": (
            "(scales[..., None] > table[:-1])",
            "(scales[..., None] >= table[:-1])",
        ),  # off by one
        "q3": ("scales = scales.clamp_min(0.11)", "scales = scales"),  # missing clamp
        "q4": ("100 * z_bytes / (y_bytes + z_bytes)", "100 * z_bytes / y_bytes"),
    },
    "ch07": {
        "q1": (
            "mask[centre, :centre] = 1",
            "mask[centre, :centre + 1] = 1",
        ),  # type B: sees itself
        "q2": ("(rows + cols) % 2 == 0", "rows % 2 == 0"),  # stripes
        "q3": ("weight * causal_mask(k)", "weight"),  # unmasked
        "q4": ("return min(times)", "return 1000 * min(times)"),
    },  # milliseconds
    "ch08": {
        "q1": (
            "F.mse_loss(x_hat_student, x_hat_teacher)",
            "F.mse_loss(x_hat_teacher, x)",
        ),  # trains nothing
        "q2": (
            "return height * width",
            "return (2 * height) * (2 * width)",
        ),  # output positions
        "q3": ("copy.deepcopy(teacher)", "teacher"),  # changes the teacher
        "q4": (
            "saving = teacher_macs / student_macs",
            "saving = student_macs / teacher_macs",
        ),
    },
    "ch09": {
        "q1": (
            "18, stride=16, padding=1",
            "16, stride=16",
        ),  # JPEG's blocks: no overlap
        "q2": ("upsampling = 2 * M", "upsampling = M"),  # residual branch forgotten
        "q3": (
            "torch.softmax((logits + gumbel) / tau",
            "torch.softmax((logits + gumbel)",
        ),  # tau once
        "q4": (
            '100 * gap / result["amortized"]["cost"]',
            '100 * gap / result["sga"]["cost"]',
        ),
    },
    "ch10": {
        "q1": (
            "distance = torch.mean((y_rectified - y) ** 2)",
            "distance = torch.sum((y_rectified - y) ** 2)",
        ),
        "q2": (
            # trains h_a, h_s and the prior too
            'parameter.requires_grad_(name.startswith("g_s."))',
            'parameter.requires_grad_(not name.startswith("g_a."))',
        ),
        "q3": (
            "return f + self.conv2(torch.relu(self.conv1(f)))",
            "return self.conv2(torch.relu(self.conv1(f)))",
        ),
        "q4": (
            '100 * (1 - errors["rectified"].sum().item() / errors["rounded"].sum()'
            ".item())",
            '100 * errors["rectified"].sum().item() / errors["rounded"].sum().item()',
        ),
    },  # what is left
    "ch11": {
        "q1": (
            "return torch.round(coordinates) @ basis",
            "return torch.round(y) @ basis",
        ),  # rounds in the wrong frame
        "q2": ("return torch.where(even, f, g)", "return f"),  # Z^n, not D_n
        "q3": ("(n * volume ** (2 / n))", "(n * volume)"),  # the volume, not V^(2/n)
        "q4": ('miss_percent = 100 * miss["rate"]', 'miss_percent = miss["rate"]'),
    },  # a fraction, not percent
    "ch12": {
        "q1": (
            "return 100 * (math.exp(gap) - 1)",
            "return 100 * gap",
        ),  # the log gap, not a rate ratio
        "q2": (
            "return sum(psnrs) / len(psnrs)",
            "return 10 * math.log10(1 / (sum(mses) / len(mses)))",
        ),  # PSNR of the mean MSE
        "q3": (
            "indices = generator.integers(0, n, n)",
            "indices = generator.permutation(n)",
        ),  # without replacement
        "q4": (
            "metrics.bd_rate(rate_420, psnr_420, rate_444, psnr_444)",
            "metrics.bd_rate(rate_444, psnr_444, rate_420, psnr_420)",
        ),
    },  # anchor and test swapped
}


def _assign_key() -> str:
    """A hash of everything ``exercises/assign.py`` reads and runs: the sources, the
    script, the setup cell, the Gradescope entry point, the Python and otter-grader
    versions."""
    digest = hashlib.sha256(
        f"{sys.version} otter {metadata.version('otter-grader')}".encode()
    )
    inputs = sorted((REPO / "exercises" / "source").iterdir()) + [
        REPO / "exercises" / "assign.py",
        REPO / "exercises" / "setup_cell.py",
        REPO / "lic_teach" / "grading" / "gradescope.py",
    ]
    for path in inputs:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """``make exercises`` (without otter's own solution run) into a fresh folder, kept
    in the cache under :func:`_assign_key`: the same inputs give the same files (80 s
    saved)."""
    cached = cache.default_cache_dir() / "exercises-built" / _assign_key()
    if not cached.is_dir():
        root = tmp_path_factory.mktemp("exercises_built")
        subprocess.run(
            [
                sys.executable,
                str(REPO / "exercises" / "assign.py"),
                "--no-run-tests",
                "--root",
                str(root),
            ],
            check=True,
            capture_output=True,
        )
        # one partial copy per process: two test workers may build at once, and the
        # first to finish wins
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(root, partial)
        try:
            partial.replace(cached)
        except OSError:  # the other worker's copy is in place: the same files
            shutil.rmtree(partial)
    return cached


def _committed_and_built(built):
    for exercise, source in zip(IDS, SOURCES):
        yield (
            REPO / "exercises" / "student" / source.name,
            built / "exercises" / "student" / source.name,
        )
        gradescope = Path("exercises") / "gradescope" / f"{exercise}_autograder.zip"
        yield REPO / gradescope, built / gradescope
        for folder in (
            Path("lic_teach") / "exercise_tests" / exercise,
            Path("exercises") / "autograder" / exercise,
        ):
            for path in sorted((built / folder).iterdir()):
                yield REPO / folder / path.name, path


def _contents(path: Path):
    """A file's bytes; for a zip, its entries' names, permissions and bytes (not how
    zlib packed them)."""
    if path.suffix != ".zip":
        return path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        return [
            (i.filename, i.date_time, i.external_attr, archive.read(i))
            for i in archive.infolist()
        ]


def test_generated_files_are_up_to_date(built):
    """What `make exercises` writes is committed, unchanged: students open these
    files."""
    stale = [
        str(c.relative_to(REPO))
        for c, b in _committed_and_built(built)
        if not c.exists() or _contents(c) != _contents(b)
    ]
    assert not stale, f"run `make exercises` and commit: {stale}"


def test_every_chapter_has_an_exercise():
    chapters = sorted(p.name[:4] for p in (REPO / "book").glob("ch*_*.ipynb"))
    assert IDS == chapters == exercises.exercises()
    for exercise in IDS:
        questions = grading.question_files(REPO / "exercises" / "autograder" / exercise)
        assert len(questions) >= 4, exercise
        assert set(WRONG_ANSWERS[exercise]) == set(questions), (
            f"{exercise}: a wrong answer per question"
        )


@pytest.mark.parametrize("exercise", IDS)
def test_student_notebook_checks_offline_with_public_tests(exercise):
    """Students get the setup cell, then a grader on the tests shipped in the package;
    those hold no hidden test, and every question also has a hidden one."""
    source = next(s for s in SOURCES if s.name.startswith(exercise))
    notebook = nbformat.read(
        str(REPO / "exercises" / "student" / source.name), as_version=4
    )
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code[0] == (REPO / "exercises" / "setup_cell.py").read_text().strip()
    assert f'tests_dir("{exercise}")' in code[1]
    assert "otter.Notebook" in code[1]
    assert notebook.metadata["lic_teach"]["exercise"] == exercise
    assert not any("BEGIN SOLUTION" in c for c in code)
    for question, path in grading.question_files(
        Path(exercises.tests_dir(exercise))
    ).items():
        assert "hidden=True" not in path.read_text()
        full = (REPO / "exercises" / "autograder" / exercise / path.name).read_text()
        assert "hidden=True" in full
        assert f'grader.check("{question}")' in "".join(code)


def test_exercise_setup_cell_installs_the_exercises_extra_and_is_harmless_here():
    import yaml

    setup = (REPO / "exercises" / "setup_cell.py").read_text()
    repository = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert f'os.environ.get("LIC_TEACH_REPO", "{repository}")' in setup
    assert 'lic_teach.colab.install("exercises")' in setup
    exec(compile(setup, "setup_cell", "exec"), {})  # outside Colab: no install


def _grade(notebook, tmp_path, name, **limits):
    path = tmp_path / name
    nbformat.write(notebook, str(path))
    return grading.grade_notebook(path, limits=grading.Limits(**limits))


def _source(exercise):
    return next(s for s in SOURCES if s.name.startswith(exercise))


@pytest.fixture(scope="session")
def graded(built):
    """Every exercise's wrong answers checked with
    :func:`wrong_answers.reject_wrong_answers` (one kernel an exercise, which first
    grades the solution), and its untouched student notebook graded, all in one pool of
    parallel kernels, as many as the cores and the memory allow; the longest first.
    ``{(kind, exercise): result}``."""
    calls, keys = [], []
    for exercise in IDS:
        solution = built / "exercises" / "autograder" / exercise / "solution.ipynb"
        keys.append(("wrong", exercise))
        calls.append(
            lambda s=solution, e=exercise: wrong_answers.reject_wrong_answers(
                s, WRONG_ANSWERS[e]
            )
        )
    for exercise in IDS:
        keys.append(("untouched", exercise))
        calls.append(
            lambda e=exercise: grading.grade_notebook(
                REPO / "exercises" / "student" / _source(e).name
            )
        )
    return dict(zip(keys, grading.in_parallel(calls, grading.default_jobs())))


@pytest.mark.parametrize("exercise", IDS)
def test_solutions_score_full_and_untouched_notebooks_zero(exercise, graded):
    """The solution is graded in a fresh kernel with the full tests, hidden ones
    included, before any wrong answer runs there; the student notebook as handed out
    scores zero."""
    solution, untouched = (
        graded["wrong", exercise]["solution"],
        graded["untouched", exercise],
    )
    assert solution.exercise == untouched.exercise == exercise, (
        "the exercise is read from the notebook"
    )
    assert solution.scores == solution.possible, solution.feedback
    assert solution.total > 0
    assert set(untouched.scores.values()) == {0.0}, untouched.scores
    assert set(untouched.feedback) == set(untouched.possible), (
        "every lost question says why"
    )


@pytest.mark.parametrize("exercise", IDS)
def test_a_plausible_wrong_answer_is_rejected(exercise, graded):
    """For each question, its mistake with the rest of the solution right scores zero on
    that question, in the kernel where the solution itself scored full marks."""
    grades = graded["wrong", exercise]
    assert grades["solution"].scores == grades["solution"].possible, grades[
        "solution"
    ].feedback
    for question, (_, wrong) in WRONG_ANSWERS[exercise].items():
        assert grades[question].scores == {question: 0.0}, (
            f"{exercise} {question}: {wrong!r} was accepted"
        )
        assert grades[question].feedback[question]


def _with_cell(notebook, after, source):
    """A copy of ``notebook`` with a code cell ``source`` after the first cell
    containing ``after``."""
    notebook = copy.deepcopy(notebook)
    index = next(i for i, c in enumerate(notebook.cells) if after in c.source)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return notebook


def _with_cells(notebook, *insertions):
    for after, source in insertions:
        notebook = _with_cell(notebook, after, source)
    return notebook


def test_bad_submissions_are_graded_without_stopping_the_rest(built, tmp_path):
    """Each misbehaviour costs the question it is in, with a message that says what
    happened, and nothing else: two notebooks hold three and two of them, in different
    questions, beside one that kills its kernel, a good one and a file that is not a
    notebook."""
    solution = nbformat.read(
        str(built / "exercises" / "autograder" / "ch01" / "solution.ipynb"),
        as_version=4,
    )
    folder = tmp_path / "submissions"
    folder.mkdir()
    submissions = {
        "a_raises_loops_hogs": _with_cells(
            solution,
            ("def entropy_bits", "1 / 0"),
            ("def dct_matrix", "while True:\n    pass"),
            ("def psnr", "hog = np.ones(2**29)  # 4 GiB, over the limit below"),
        ),
        "b_deletes_test_loops": _with_cells(
            solution,
            ('grader.check("q4")', "del psnr, bpp_saved"),
            (
                'grader.check("q4")',
                "def entropy_bits(s):\n    while True:\n        pass",
            ),
        ),
        "c_kills_kernel": _with_cell(
            solution, "def entropy_bits", "import os\nos._exit(1)"
        ),
        "d_good": solution,
    }
    for name, notebook in submissions.items():
        nbformat.write(notebook, str(folder / f"ch01_{name}.ipynb"))
    (folder / "ch01_e_not_a_notebook.ipynb").write_text("{ this is not json")
    out = tmp_path / "scores.csv"
    assert (
        grading.main(
            [
                str(folder),
                "--out",
                str(out),
                "--cell-timeout",
                "20",
                "--test-timeout",
                "8",
                "--jobs",
                "2",
                "--memory-gib",
                "3",
            ]
        )
        == 0
    )
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    assert list(rows) == sorted(rows), "in file-name order"
    assert len(rows) == 5, "a row per file"
    scores = lambda name: [
        float(rows[f"ch01_{name}.ipynb"][q]) for q in ("q1", "q2", "q3", "q4")
    ]
    feedback = lambda name: dict(
        part.split(": ", 1)
        for part in rows[f"ch01_{name}.ipynb"]["feedback"].split(" | ")
    )

    assert scores("a_raises_loops_hogs") == [0, 0, 0, 1]
    said = feedback("a_raises_loops_hogs")
    assert "ZeroDivisionError" in said["q1"]
    assert "interrupted" in said["q2"]
    assert "ran out of memory (a notebook may use 3 GiB)" in said["q3"]
    assert "q4" not in said
    assert scores("b_deletes_test_loops") == [0, 1, 0, 0]
    said = feedback("b_deletes_test_loops")
    assert "ran past 8 s" in said["q1"]
    assert "define a function psnr" in said["q3"]
    assert float(rows["ch01_c_kills_kernel.ipynb"]["total"]) == 0
    assert "died" in feedback("c_kills_kernel")["q1"]
    assert float(rows["ch01_d_good.ipynb"]["total"]) == 4
    assert "not a readable notebook" in rows["ch01_e_not_a_notebook.ipynb"]["feedback"]

    report = (
        tmp_path / "scores.md"
    ).read_text()  # the summary per question, beside the CSV
    assert "| ch01 | q1 | 3 of 4 |" in report
    assert "| ch01 | q4 | 2 of 4 |" in report
    assert "Not graded (1): ch01_e_not_a_notebook.ipynb" in report


def test_parallel_grading_shares_the_cores_between_kernels():
    kernel = grading.kernel
    assert kernel._thread_share() == {}  # one at a time: torch picks its threads
    kernel._JOBS.count = 2
    try:
        share = str(max(1, (os.cpu_count() or 1) // 2))
        assert kernel._thread_share() == {
            "OMP_NUM_THREADS": share,
            "MKL_NUM_THREADS": share,
        }
    finally:
        kernel._JOBS.count = 1


def test_grading_refuses_what_it_cannot_grade(tmp_path):
    with pytest.raises(ValueError, match="no .ipynb"):
        grading.grade_folder(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        grading.grade_folder(tmp_path / "missing")
    (tmp_path / "homework.ipynb").write_text(
        nbformat.writes(nbformat.v4.new_notebook())
    )
    grade = grading.grade_notebook(tmp_path / "homework.ipynb")
    assert grade.total == 0
    assert "which exercise" in grade.feedback["notebook"]
    with pytest.raises(ValueError, match="no exercise 'ch99'"):
        exercises.tests_dir("ch99")


def test_a_missing_autograder_folder_says_what_to_pass(tmp_path, monkeypatch, capsys):
    (tmp_path / "ch01_a.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    with pytest.raises(ValueError, match="pass --autograder"):
        grading.grade_folder(tmp_path, autograder=tmp_path / "missing")
    monkeypatch.setattr(grading.grades, "CHECKOUT_AUTOGRADER", tmp_path / "none")
    with pytest.raises(ValueError, match=f"no autograder tests at {tmp_path}/none"):
        grading.grade_notebook(tmp_path / "ch01_a.ipynb")
    with pytest.raises(SystemExit):
        grading.main([str(tmp_path)])
    assert "pass --autograder" in capsys.readouterr().err


def test_grading_time_limit_stops_a_whole_notebook(built, tmp_path):
    """A notebook that runs past its total limit scores zero, with a message, and
    promptly."""
    solution = nbformat.read(
        str(built / "exercises" / "autograder" / "ch01" / "solution.ipynb"),
        as_version=4,
    )
    slow = _with_cell(
        solution,
        "def entropy_bits",
        "import time\nfor _ in range(100):\n    time.sleep(0.1)",
    )
    grade = _grade(slow, tmp_path, "ch01_slow.ipynb", total_timeout=6)
    assert grade.total == 0
    assert re.search(r"ran past 6 s in all", grade.feedback["q1"])


def test_the_report_says_which_question_confused_the_class():
    possible = {"q1": 1.0, "q2": 2.0}
    grades = [
        grading.Grade(
            "a.ipynb",
            "ch02",
            {"q1": 1.0, "q2": 0.0},
            possible,
            {"q2": "cell 7 raised NameError: name 'pmf' is not defined"},
        ),
        grading.Grade(
            "b.ipynb",
            "ch02",
            {"q1": 1.0, "q2": 1.0},
            possible,
            {
                "q2": "cell 9 raised NameError: name 'pmf' is not defined; "
                "AssertionError: off by one"
            },
        ),
        grading.Grade(
            "c.ipynb",
            "ch02",
            {"q1": 0.0, "q2": 0.0},
            possible,
            {
                "q1": "AssertionError: nats, not bits",
                "q2": "AssertionError: off by one (a hidden test)",
            },
        ),
        grading.Grade("d.ipynb", "ch02", {"q1": 1.0, "q2": 2.0}, possible),
        grading.Grade(
            "e.ipynb", "?", {}, {}, {"notebook": "not a readable notebook: bad JSON"}
        ),
    ]
    q1, q2 = grading.question_summary(grades)
    assert (
        q1["lost"],
        q1["submissions"],
        q1["mean"],
        q1["reason"],
        q1["reason_count"],
    ) == (1, 4, 0.75, "AssertionError: nats, not bits", 1)
    assert (q2["lost"], q2["mean"], q2["possible"]) == (3, 0.75, 2.0)
    assert (q2["reason"], q2["reason_count"]) == (
        "a cell raised NameError: name 'pmf' is not defined",
        2,
    )
    table = grading.summary_markdown(grades)
    assert (
        "| ch02 | q2 | 3 of 4 | 0.75 / 2 "
        "| a cell raised NameError: name 'pmf' is not defined (2 of 3) |" in table
    )
    assert "Not graded (1): e.ipynb: not a readable notebook" in table


def test_grading_kernels_start_one_at_a_time_across_processes():
    """Kernels started at once can pick the same TCP ports: while one grading process
    holds the start lock, another waits for it, and goes on once it is released."""
    other = [
        sys.executable,
        "-c",
        "from lic_teach import grading\n"
        "with grading.kernel_start_lock(): print('started')",
    ]
    with grading.kernel_start_lock():
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run(other, capture_output=True, timeout=4, cwd=REPO)
    assert (
        subprocess.run(
            other, capture_output=True, text=True, timeout=60, cwd=REPO
        ).stdout
        == "started\n"
    )


def test_parallel_jobs_are_bounded_by_cores_and_memory(monkeypatch):
    assert 0 < grading.available_memory_gib() < 2**20  # read from this machine, in GiB
    monkeypatch.setattr(grading.limits, "available_memory_gib", lambda: 9.0)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert grading.default_jobs(4.0) == 2
    assert grading.default_jobs(1.0) == 9
    assert grading.default_jobs(0) == 16
    monkeypatch.setattr(grading.limits, "available_memory_gib", lambda: 2.0)
    assert grading.default_jobs(4.0) == 1  # always at least one


def test_a_wrong_answer_check_forgets_only_what_the_question_binds():
    source = (
        "import numpy as np, os.path\nfrom math import log2 as lg\n"
        "x, (y, z) = 1, (2, 3)\nw += 1\n"
        "def f(a):\n    inner = a\n    return inner\nclass C:\n    field = 1\n"
        "for i in range(2):\n    total = [k for k in range(i)]\n"
        "with open('f') as handle:\n    pass\n"
        "g = lambda q: q\n"
    )
    assert wrong_answers.bound_names(source) == {
        "np",
        "os",
        "lg",
        "x",
        "y",
        "z",
        "w",
        "f",
        "C",
        "i",
        "total",
        "handle",
        "g",
    }
    assert (
        wrong_answers.bound_names("%timeit f()") == set()
    )  # not Python: nothing to forget


def test_wrong_answers_must_name_one_place_in_their_question(built):
    solution = built / "exercises" / "autograder" / "ch01" / "solution.ipynb"
    with pytest.raises(ValueError, match="exactly one"):
        wrong_answers.reject_wrong_answers(
            solution, {"q2": ("np.log2(p)", "np.log(p)")}
        )  # q1's text
    with pytest.raises(ValueError, match=r"no question \['q9'\]"):
        wrong_answers.reject_wrong_answers(solution, {"q9": ("a", "b")})


def test_the_gradescope_autograder_grades_a_notebook_without_docker(built, tmp_path):
    """The zip `make exercises` writes for Gradescope: otter's container recipe with
    lic_teach's grader as its entry point (the verdict outside the student's kernel),
    tried locally as the README tells instructors to before uploading, gives the
    solution full marks and a wrong answer zero on its question, with the hidden
    tests."""
    archive = built / "exercises" / "gradescope" / "ch02_autograder.zip"
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
        environment = zipped.read("environment.yml").decode()
        entry = zipped.read("run_otter.py").decode()
        settings = json.loads(zipped.read(gradescope.SETTINGS))
    assert {
        "run_autograder",
        "run_otter.py",
        "setup.sh",
        "environment.yml",
        "otter_config.json",
        gradescope.SETTINGS,
    } <= names
    # Gradescope runs run_autograder -> run_otter.py -> gradescope.main on /autograder;
    # the local trial unzips the archive into a folder of that shape and grades there
    assert entry == gradescope.ENTRY
    assert settings == {"exercise": "ch02", "hidden_seed": None}
    tests = sorted(n for n in names if n.startswith("tests/"))
    assert tests == [
        f"tests/{q}.py"
        for q in grading.question_files(REPO / "exercises" / "autograder" / "ch02")
    ]
    assert "hidden=True" in zipfile.ZipFile(archive).read("tests/q1.py").decode()
    repository = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert (
        f"lic_teach[exercises] @ {repository}/archive/refs/heads/main.zip"
        in environment
    )
    assert "python=3.12" in environment
    assert "download.pytorch.org/whl/cpu" in environment

    solution = nbformat.read(
        str(built / "exercises" / "autograder" / "ch02" / "solution.ipynb"),
        as_version=4,
    )
    right, wrong = WRONG_ANSWERS["ch02"]["q2"]
    (cell,) = [c for c in solution.cells if right in c.source]
    # one run after the other, as Gradescope runs each submission in a container of its
    # own
    scores = {}
    for name, notebook in (("right", solution), ("wrong", None)):
        if notebook is None:
            cell.source = cell.source.replace(right, wrong)
            notebook = solution
        folder = tmp_path / name
        folder.mkdir()
        nbformat.write(notebook, str(folder / "ch02_submission.ipynb"))
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "lic_teach.grading.gradescope",
                str(archive),
                str(folder / "ch02_submission.ipynb"),
                "--out",
                str(folder / "results.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-2000:]
        results = json.loads((tmp_path / name / "results.json").read_text())["tests"]
        scores[name] = {t["name"]: t["score"] for t in results if "score" in t}
    assert scores["right"] == {"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 1.0}
    assert scores["wrong"] == {"q1": 1.0, "q2": 0.0, "q3": 1.0, "q4": 1.0}
