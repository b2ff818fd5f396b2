"""The graded exercises: generated files up to date, solutions full marks, untouched
notebooks zero, a plausible wrong answer rejected for every question, and submissions
that raise, loop, delete variables or kill their kernel graded without stopping the rest."""

import copy
import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest

from lic_teach import cache, exercises, grading

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "exercises" / "source").glob("ch*_*.ipynb"))
IDS = [s.name[:4] for s in SOURCES]

pytestmark = pytest.mark.slow

# For each question, a plausible mistake: (text in the solution, what a student wrote instead).
WRONG_ANSWERS = {
    "ch01": {"q1": ("np.log2(p)", "np.log(p)"),                                   # wrong log base
             "q2": ("matrix[0] /= np.sqrt(2)", "pass"),                          # not orthonormal
             "q3": ("10 * math.log10(1 / mse)", "10 * math.log10(1 / math.sqrt(mse))"),  # RMSE for MSE
             "q4": ('transform="none"', 'color="rgb"')},                         # measured the wrong thing
    "ch02": {"q1": ("-np.log2(pmf[", "-np.log(pmf["),                             # nats
             "q2": ("max(1, round(p * total))", "round(p * total)"),             # missing clamp
             "q3": ("Fraction(cdf[s], total)", "Fraction(cdf[s + 1], total)"),   # off by one
             "q4": ("8 * len(data) - ideal", "len(data) - ideal / 8")},          # bytes for bits, off by 8x
    "ch03": {"q1": ("x / torch.sqrt(norm)", "x / norm"),                          # missing square root
             "q2": ("-torch.log2(p).sum()) for p", "-torch.log(p).sum()) for p"),  # nats
             "q3": ("lmbda * 255**2 * mse", "lmbda * 255 * mse"),                # 255 for 255^2
             "q4": ("measured_bpp = 8 * len(data)", "measured_bpp = len(data)")},  # bytes, not bits
    "ch04": {"q1": ("return y + (torch.round(y) - y).detach()", "return torch.round(y)"),  # no gradient
             "q2": ("torch.rand_like(y) - 0.5", "torch.rand_like(y)"),           # U(0, 1)
             "q3": ("(2 * math.tanh(alpha / 2))", "2"),                           # not normalized
             "q4": ("p_tilde(torch.round(y))", "p_tilde(torch.floor(y))")},      # floor for round
    "ch05": {"q1": ("weight * (y - floor) ** 2", "(y - floor) ** 2"),             # lambda forgotten
             "q2": ("k - torch.sign(k) / 2", "k - 0.5"),                          # sign forgotten
             "q3": ("for parameter in model.parameters():", "for parameter in model.g_a.parameters():"),
             "q4": ("fit_decoder(model, crops, steps=30", "fit(model, crops, steps=30")},  # retrains the encoder
    "ch06": {"q1": ("torch.exp(torch.linspace(math.log(minimum), math.log(maximum), levels))",
                    "torch.linspace(minimum, maximum, levels)"),                  # linear spacing
             "q2": ("(scales[..., None] > table[:-1])", "(scales[..., None] >= table[:-1])"),  # off by one
             "q3": ("scales = scales.clamp_min(0.11)", "scales = scales"),        # missing clamp
             "q4": ("100 * z_bytes / (y_bytes + z_bytes)", "100 * z_bytes / y_bytes")},
    "ch07": {"q1": ("mask[centre, :centre] = 1", "mask[centre, :centre + 1] = 1"),  # type B: sees itself
             "q2": ("(rows + cols) % 2 == 0", "rows % 2 == 0"),                  # stripes
             "q3": ("weight * causal_mask(k)", "weight"),                         # unmasked
             "q4": ("return min(times)", "return 1000 * min(times)")},            # milliseconds
    "ch08": {"q1": ("F.mse_loss(x_hat_student, x_hat_teacher)", "F.mse_loss(x_hat_teacher, x)"),  # trains nothing
             "q2": ("return height * width", "return (2 * height) * (2 * width)"),  # output positions
             "q3": ("copy.deepcopy(teacher)", "teacher"),                         # changes the teacher
             "q4": ("saving = teacher_macs / student_macs", "saving = student_macs / teacher_macs")},
    "ch09": {"q1": ("18, stride=16, padding=1", "16, stride=16"),                 # JPEG's blocks: no overlap
             "q2": ("upsampling = 2 * M", "upsampling = M"),                      # residual branch forgotten
             "q3": ("torch.softmax((logits + gumbel) / tau", "torch.softmax((logits + gumbel)"),  # tau once
             "q4": ('100 * gap / result["amortized"]["cost"]', '100 * gap / result["sga"]["cost"]')},
}


def _assign_key() -> str:
    """A hash of everything ``exercises/assign.py`` reads and runs: the sources, the script,
    the setup cell, the Python and otter-grader versions."""
    digest = hashlib.sha256(f"{sys.version} otter {metadata.version('otter-grader')}".encode())
    inputs = sorted((REPO / "exercises" / "source").iterdir()) + \
        [REPO / "exercises" / "assign.py", REPO / "exercises" / "setup_cell.py"]
    for path in inputs:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """``make exercises`` (without otter's own solution run) into a fresh folder, kept in
    the cache under :func:`_assign_key`: the same inputs give the same files (80 s saved)."""
    cached = cache.default_cache_dir() / "exercises-built" / _assign_key()
    if not cached.is_dir():
        root = tmp_path_factory.mktemp("exercises_built")
        subprocess.run([sys.executable, str(REPO / "exercises" / "assign.py"), "--no-run-tests", "--root", str(root)],
                       check=True, capture_output=True)
        partial = cached.with_name(cached.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(root, partial)
        partial.replace(cached)
    return cached


def _committed_and_built(built):
    for exercise, source in zip(IDS, SOURCES):
        yield REPO / "exercises" / "student" / source.name, built / "exercises" / "student" / source.name
        for folder in (Path("lic_teach") / "exercise_tests" / exercise, Path("exercises") / "autograder" / exercise):
            for path in sorted((built / folder).iterdir()):
                yield REPO / folder / path.name, path


def test_generated_files_are_up_to_date(built):
    """What `make exercises` writes is committed, unchanged: students open these files."""
    stale = [str(c.relative_to(REPO)) for c, b in _committed_and_built(built)
             if not c.exists() or c.read_bytes() != b.read_bytes()]
    assert not stale, f"run `make exercises` and commit: {stale}"


def test_every_chapter_has_an_exercise():
    chapters = sorted(p.name[:4] for p in (REPO / "book").glob("ch*_*.ipynb"))
    assert IDS == chapters == exercises.exercises()
    for exercise in IDS:
        questions = grading.question_files(REPO / "exercises" / "autograder" / exercise)
        assert len(questions) >= 4, exercise
        assert set(WRONG_ANSWERS[exercise]) == set(questions), f"{exercise}: a wrong answer per question"


@pytest.mark.parametrize("exercise", IDS)
def test_student_notebook_checks_offline_with_public_tests(exercise):
    """Students get the setup cell, then a grader on the tests shipped in the package;
    those hold no hidden test, and every question also has a hidden one."""
    source = next(s for s in SOURCES if s.name.startswith(exercise))
    notebook = nbformat.read(str(REPO / "exercises" / "student" / source.name), as_version=4)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert code[0] == (REPO / "exercises" / "setup_cell.py").read_text().strip()
    assert f'tests_dir("{exercise}")' in code[1] and "otter.Notebook" in code[1]
    assert notebook.metadata["lic_teach"]["exercise"] == exercise
    assert not any("BEGIN SOLUTION" in c for c in code)
    for question, path in grading.question_files(Path(exercises.tests_dir(exercise))).items():
        assert "hidden=True" not in path.read_text()
        full = (REPO / "exercises" / "autograder" / exercise / path.name).read_text()
        assert "hidden=True" in full and f'grader.check("{question}")' in "".join(code)


def test_exercise_setup_cell_installs_the_exercises_extra_and_is_harmless_here():
    import yaml
    setup = (REPO / "exercises" / "setup_cell.py").read_text()
    repository = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert f'os.environ.get("LIC_TEACH_REPO", "{repository}")' in setup
    assert 'lic_teach.colab.install("exercises")' in setup
    exec(compile(setup, "setup_cell", "exec"), {})   # outside Colab: no install


def _grade(notebook, tmp_path, name, **options):
    path = tmp_path / name
    nbformat.write(notebook, str(path))
    return grading.grade_notebook(path, **options)


@pytest.mark.parametrize("exercise", IDS)
def test_solutions_score_full_and_untouched_notebooks_zero(exercise, built, tmp_path):
    """Both graded at once, as an instructor grades a folder (each in its own kernel)."""
    source = next(s for s in SOURCES if s.name.startswith(exercise))
    shutil.copy(built / "exercises" / "autograder" / exercise / "solution.ipynb",
                tmp_path / f"{exercise}_solution.ipynb")
    shutil.copy(REPO / "exercises" / "student" / source.name, tmp_path / source.name)
    grades = {g.submission: g for g in grading.grade_folder(tmp_path)}
    solution, untouched = grades[f"{exercise}_solution.ipynb"], grades[source.name]
    assert solution.scores == solution.possible and solution.total > 0, solution.feedback
    assert set(untouched.scores.values()) == {0.0}, untouched.scores
    assert set(untouched.feedback) == set(untouched.possible), "every lost question says why"


@pytest.mark.parametrize("exercise", IDS)
def test_a_plausible_wrong_answer_is_rejected(exercise, built, tmp_path):
    """One submission per question, each with that question's mistake and the rest right,
    graded together as an instructor grades a folder (in parallel)."""
    solution = nbformat.read(str(built / "exercises" / "autograder" / exercise / "solution.ipynb"), as_version=4)
    for question, (right, wrong) in WRONG_ANSWERS[exercise].items():
        notebook = copy.deepcopy(solution)
        cells = [c for c in notebook.cells if c.cell_type == "code" and right in c.source]
        assert len(cells) == 1, f"{right!r} should appear in exactly one cell"
        cells[0].source = cells[0].source.replace(right, wrong)
        nbformat.write(_through(notebook, question), str(tmp_path / f"{exercise}_wrong_{question}.ipynb"))
    grades = {g.submission: g for g in grading.grade_folder(tmp_path)}
    for question, (_, wrong) in WRONG_ANSWERS[exercise].items():
        grade = grades[f"{exercise}_wrong_{question}.ipynb"]
        assert grade.scores[question] == 0.0, f"{exercise} {question}: {wrong!r} was accepted"
        assert question in grade.feedback


def _through(notebook, question):
    """``notebook`` cut after the ``grader.check`` cell of ``question``. Later questions'
    cells cannot change its score, and skipping them saves minutes: the measured
    questions of chapters 3 and 5 train a model."""
    end = next(i for i, c in enumerate(notebook.cells) if f'grader.check("{question}")' in c.source)
    notebook.cells = notebook.cells[:end + 1]
    return notebook


def _with_cell(notebook, after, source):
    """A copy of ``notebook`` with a code cell ``source`` after the first cell containing ``after``."""
    notebook = copy.deepcopy(notebook)
    index = next(i for i, c in enumerate(notebook.cells) if after in c.source)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return notebook


def test_bad_submissions_are_graded_without_stopping_the_rest(built, tmp_path):
    solution = nbformat.read(str(built / "exercises" / "autograder" / "ch01" / "solution.ipynb"), as_version=4)
    folder = tmp_path / "submissions"
    folder.mkdir()
    submissions = {
        "a_raises": _with_cell(solution, "def entropy_bits", "1 / 0"),
        "b_loops": _with_cell(solution, "def dct_matrix", "while True:\n    pass"),
        "c_deletes": _with_cell(solution, 'grader.check("q4")', "del psnr, bpp_saved"),
        "d_test_loops": _with_cell(solution, 'grader.check("q4")', "def entropy_bits(s):\n    while True:\n        pass"),
        "e_kills_kernel": _with_cell(solution, "def entropy_bits", "import os\nos._exit(1)"),
        "f_good": solution,
    }
    for name, notebook in submissions.items():
        nbformat.write(notebook, str(folder / f"ch01_{name}.ipynb"))
    (folder / "ch01_g_not_a_notebook.ipynb").write_text("{ this is not json")
    out = tmp_path / "scores.csv"
    grading.main([str(folder), "--out", str(out), "--cell-timeout", "10", "--test-timeout", "8", "--jobs", "2"])
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    assert len(rows) == 7
    score = lambda name, q: float(rows[f"ch01_{name}.ipynb"][q])
    feedback = lambda name: rows[f"ch01_{name}.ipynb"]["feedback"]

    assert [score("a_raises", q) for q in ("q1", "q2", "q3", "q4")] == [0, 1, 1, 1]
    assert "ZeroDivisionError" in feedback("a_raises")
    assert [score("b_loops", q) for q in ("q1", "q2", "q3", "q4")] == [1, 0, 1, 1]
    assert "interrupted" in feedback("b_loops")
    assert [score("c_deletes", q) for q in ("q1", "q2", "q3", "q4")] == [1, 1, 0, 0]
    assert "define a function psnr" in feedback("c_deletes")
    assert [score("d_test_loops", q) for q in ("q1", "q2", "q3", "q4")] == [0, 1, 1, 1]
    assert "ran past" in feedback("d_test_loops")
    assert float(rows["ch01_e_kills_kernel.ipynb"]["total"]) == 0 and "died" in feedback("e_kills_kernel")
    assert float(rows["ch01_f_good.ipynb"]["total"]) == 4
    assert "not a readable notebook" in rows["ch01_g_not_a_notebook.ipynb"]["feedback"]


def test_parallel_grading_shares_the_cores_between_kernels():
    assert grading._thread_share() == {}                      # one at a time: torch picks its threads
    grading._JOBS.count = 2
    try:
        share = str(max(1, (os.cpu_count() or 1) // 2))
        assert grading._thread_share() == {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}
    finally:
        grading._JOBS.count = 1


def test_grading_refuses_what_it_cannot_grade(tmp_path):
    with pytest.raises(ValueError, match="no .ipynb"):
        grading.grade_folder(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        grading.grade_folder(tmp_path / "missing")
    (tmp_path / "homework.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    grade = grading.grade_notebook(tmp_path / "homework.ipynb")
    assert grade.total == 0 and "which exercise" in grade.feedback["notebook"]
    with pytest.raises(ValueError, match="no exercise 'ch99'"):
        exercises.tests_dir("ch99")


def test_grading_time_limit_stops_a_whole_notebook(built, tmp_path):
    """A notebook that runs past its total limit scores zero, with a message, and promptly."""
    solution = nbformat.read(str(built / "exercises" / "autograder" / "ch01" / "solution.ipynb"), as_version=4)
    slow = _with_cell(solution, "def entropy_bits", "import time\nfor _ in range(100):\n    time.sleep(0.1)")
    grade = _grade(slow, tmp_path, "ch01_slow.ipynb", total_timeout=6)
    assert grade.total == 0 and re.search(r"ran past 6 s in all", grade.feedback["q1"])
