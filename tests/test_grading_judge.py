"""The verdict is computed outside the student's code (issue 36): values cross from the
kernel as checked plain data, and the attacks of the issue's table, each in a notebook
graded beside an honest one, score exactly what they deserve."""

import json
import os
import struct
import textwrap
import uuid
import zipfile

import nbformat
import numpy as np
import pytest
import torch

from lic_teach.grading import grades, gradescope, judge, sandbox, values
from lic_teach.grading.limits import Limits

# ------------------------------------------------------------------ values, one by one


def _round_trip(value):
    """``value`` encoded as the kernel would and decoded as the judge does."""

    def handle(obj):
        return ["handle", 1, type(obj).__qualname__, callable(obj), []]

    return values.decode(values.encode(value, handle), handle=lambda e: ("handle", e))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        2**100,
        -0.5,
        float("inf"),
        1 + 2j,
        "text",
        b"\x00\xff",
        [1, (2.5, "a")],
        {"a": [1, 2], 3: None},
        {1, 2},
    ],
)
def test_plain_values_cross_unchanged(value):
    back = _round_trip(value)
    assert back == value
    assert type(back) is type(value)


def test_arrays_tensors_and_modules_cross_as_themselves():
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert np.array_equal(_round_trip(array), array)
    assert _round_trip(np.float32(1.5)) == np.float32(1.5)
    assert type(_round_trip(np.float64(2.0))) is np.float64
    tensor = torch.randn(2, 3, dtype=torch.float64).requires_grad_()
    back = _round_trip(tensor)
    assert torch.equal(back, tensor.detach())
    assert back.requires_grad
    assert _round_trip(torch.tensor(7, dtype=torch.int64)).item() == 7
    assert _round_trip(torch.zeros(0, 4)).shape == (0, 4)
    assert (
        _round_trip(torch.tensor([1.5], dtype=torch.bfloat16)).dtype == torch.bfloat16
    )
    assert _round_trip(torch.Size([2, 3])) == torch.Size([2, 3])
    layer = torch.nn.ConvTranspose2d(3, 2, 5, stride=2)
    rebuilt = _round_trip(layer)
    assert type(rebuilt) is torch.nn.ConvTranspose2d
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(rebuilt(x), layer(x))


class _Liar(float):
    def __sub__(self, other):
        return 0.0

    def __eq__(self, other):
        return True


class _LyingTensor(torch.Tensor):
    pass


class _StudentModule(torch.nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(
    "value",
    [
        _Liar(1.0),
        torch.zeros(2).as_subclass(_LyingTensor),
        np.array([object()]),
        _StudentModule(),
        lambda x: x,
        [1, _Liar(2.0)],
    ],
)
def test_a_subclass_or_an_object_stays_in_the_kernel(value):
    """No subclass is taken for its base: it becomes a handle the judge cannot
    compare."""
    kept = []

    def handle(obj):
        kept.append(obj)
        return ["handle", len(kept), type(obj).__qualname__, callable(obj), []]

    back = values.decode(values.encode(value, handle), handle=lambda e: ("handle", e))
    assert kept
    assert "handle" in repr(back)


def _message(tagged, blobs=()):
    return values.to_bytes(tagged, list(blobs))


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x00" * 8,
        _message(["pickle", "cos\nsystem"]),
        _message(["float", 1.0]),
        _message(["int", 3]),
        _message(["ndarray", "|O", [1], 0], [b"\x00" * 8]),
        _message(["ndarray", "<f8", [2], 0], [b"\x00" * 8]),
        _message(["tensor", "float32", [2], 0, False, False], [b"\x00" * 4]),
        _message(["module", "os", "system", []]),
        _message(["module", "lic_teach.grading.judge", "Link", []]),
        _message(["module", "torch.nn.modules.conv", "Conv2d", [["x", ["bogus"]]]]),
        _message(["handle", 1, "f", True, []]),
        _message(["ref", 0, "module", ""]),
        _message(["list", [["atom", 1]]]),
        _message(["bytes", 0], [b"abc"])[:-1],
        struct.pack(">Q", 10**6) + b"[",
        _message(["list", [["list", []]] * 3]).replace(b"[[", b"[" * 5000 + b"[[", 1),
    ],
)
def test_malformed_answers_are_refused(message):
    with pytest.raises(values.DecodeError):
        values.decode(message)


def test_the_student_s_exception_becomes_an_error_of_the_judge():
    with pytest.raises(values.StudentError, match="ZeroDivisionError: boom"):
        values.decode(_message(["error", "ZeroDivisionError", "boom"]))


# ------------------------------------------------------- attacks, graded as notebooks

MARKER = "LIC_TEACH_GRADING_TEST"

TESTS = {
    "q1": """
        @test_case(points=None, hidden=False)
        def test_double(double):
            import numpy as np
            import torch
            assert callable(double), "define double(x)"
            assert abs(double(1.5) - 3.0) < 1e-9, "double(1.5) is 3"
            assert np.allclose(double(np.arange(3.0)), [0.0, 2.0, 4.0])
            x = torch.tensor([1.0, -2.0], requires_grad=True)
            double(x).sum().backward()
            assert torch.equal(x.grad, torch.full((2,), 2.0)), "its gradient is 2"
    """,
    "q2": """
        @test_case(points=None, hidden=True)
        def test_answer(answer):
            assert isinstance(answer, float) and abs(answer - 0.25) < 1e-12
    """,
    "q3": """
        @test_case(points=None, hidden=False)
        def test_freeze(freeze):
            import torch
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
            chosen = freeze(model)
            assert {id(p) for p in chosen} == {id(p) for p in model[1].parameters()}
            assert not any(p.requires_grad for p in model[0].parameters())
            assert all(p.requires_grad for p in model[1].parameters())
    """,
}

HONEST = """
import numpy as np

def double(x):
    return 2 * x

answer = 0.25

def freeze(model):
    for p in model[0].parameters():
        p.requires_grad_(False)
    return list(model[1].parameters())
"""

# a process of the student's that rewrites the execution report (which cells raised)
# while the grade is made, by the path or the descriptor it finds in /proc
FORGE = """
import glob, json, os, time
forged = json.dumps({"errors": {}, "died": ""})
for _ in range(3000):
    for spec in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            words = open(spec, "rb").read().split(b"\\0")
        except OSError:
            continue
        if b"--execute" in words:
            target = words[words.index(b"--execute") + 2].decode()
            for path in (target, spec.replace("cmdline", "fd/" + target)):
                try:
                    open(path, "w").write(forged)
                except (OSError, ValueError):
                    pass
    time.sleep(0.01)
"""

# a process of the student's that sends full scores as the judge, through the file or
# the descriptor the judge's spec names, for as long as the judge runs
FORGE_SCORES = """
import glob, json, time
full = {q: [1, ""] for q in ("q1", "q2", "q3")}
line = json.dumps({"phase": "grade", "results": full}) + "\\n"
for _ in range(2000):
    for spec in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            words = open(spec, "rb").read().split(b"\\0")
            if b"--judge" in words:
                settings = json.load(open(words[-2].decode()))
                fd = spec.replace("cmdline", "fd/" + str(settings.get("scores")))
                for path in (settings.get("out") or fd, fd):
                    open(path, "w").write(line)
        except (OSError, ValueError):
            pass
    for path in glob.glob("/tmp/**/scores-*.json", recursive=True):
        open(path, "w").write(json.dumps(full))
    time.sleep(0.01)
"""

# name -> (the student's cells, the score it deserves)
ATTACKS = {
    "honest": (HONEST, 3),
    "always_equal": (
        """
        class Yes(float):
            def __sub__(self, other): return Yes(0.0)
            def __rsub__(self, other): return Yes(0.0)
            def __abs__(self): return 0.0
            def __eq__(self, other): return True
            def __lt__(self, other): return True
        class YesSet(set):
            def __eq__(self, other): return True
        def double(x): return Yes(0.0)
        answer = Yes(1.0)
        def freeze(model): return YesSet()
        """,
        0,
    ),
    "lying_tensor": (
        """
        import torch
        class T(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return True
        def double(x): return torch.zeros(3).as_subclass(T)
        """,
        0,
    ),
    "patched_library": (
        """
        import builtins, numpy as np, torch
        np.allclose = torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        builtins.abs = lambda x: 0.0
        builtins.isinstance = lambda *a: True
        def double(x): return 0 * x
        answer = 0.3
        def freeze(model): return []
        """,
        0,
    ),
    "patched_otter": (
        """
        from otter.test_files import abstract_test
        abstract_test.TestFile.score = property(lambda self: 250)
        abstract_test.TestFile.passed_all = property(lambda self: True)
        answer = 0.3
        """,
        0,
    ),
    "forged_scores": (  # a background forger, then the kernel ends itself
        f"import os, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {FORGE_SCORES!r}],"
        f" start_new_session=True)\n"
        "os._exit(0)\n",
        0,
    ),
    "forged_report": (  # hides its failing cell: question 1 must still score 0
        [
            HONEST
            + "import subprocess, sys\n"
            + "class Grader:\n    def check(self, question):\n        pass\n"
            + "grader = Grader()\n"
            + f"subprocess.Popen([sys.executable, '-c', {FORGE!r}],"
            + " start_new_session=True)\n"
            + "raise ValueError('this cell fails')\n",
            'grader.check("q1")',
        ],
        2,
    ),
    "hangs_in_one_question": (
        HONEST.replace("return 2 * x", "while True:\n        pass"),
        2,
    ),
    "dies_in_a_test": (
        HONEST.replace("return 2 * x", "import os\n    os._exit(3)"),
        0,
    ),
}


def _write_tests(folder):
    """:data:`TESTS` as otter test files in ``folder``."""
    folder.mkdir(parents=True)
    for question, body in TESTS.items():
        (folder / f"{question}.py").write_text(
            "from otter.test_files import test_case\n\nOK_FORMAT = False\n\n"
            f'name = "{question}"\npoints = 1\nall_or_nothing = True\n'
            + textwrap.dedent(body)
        )


def _write_attack(name, path):
    """The notebook of :data:`ATTACKS`' ``name`` (one cell, or a list of them) at
    ``path``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["lic_teach"] = {"exercise": "ch99"}
    cells = ATTACKS[name][0]
    cells = [cells] if isinstance(cells, str) else cells
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """Every notebook of :data:`ATTACKS` graded at once, sandboxed where this machine
    can make a sandbox (otter, in the ``exercises`` extra, runs the tests)."""
    pytest.importorskip("otter")
    root = tmp_path_factory.mktemp("judge")
    _write_tests(root / "autograder" / "ch99")
    submissions = root / "submissions"
    submissions.mkdir()
    for name in ATTACKS:
        _write_attack(name, submissions / f"{name}.ipynb")
    limits = Limits(
        cell_timeout=30,
        test_timeout=8,
        total_timeout=240,
        sandbox=not sandbox.available(),
    )
    # every process of these grades inherits the marker, so that the test below finds
    # what they left and nothing of other tests running beside them
    marker = f"{MARKER}={uuid.uuid4().hex}"
    os.environ[MARKER] = marker.partition("=")[2]
    try:
        graded = grades.grade_folder(
            submissions, jobs=2, autograder=root / "autograder", limits=limits
        )
    finally:
        del os.environ[MARKER]
    return {g.submission.removesuffix(".ipynb"): g for g in graded}, root, marker


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_attack_scores_what_it_deserves(attacked, name):
    grade = attacked[0][name]
    assert grade.total == ATTACKS[name][1], grade.feedback


def test_a_hung_function_fails_its_question_only(attacked):
    grade = attacked[0]["hangs_in_one_question"]
    assert grade.scores == {"q1": 0.0, "q2": 1.0, "q3": 1.0}
    assert "ran past" in grade.feedback["q1"]


def test_a_kernel_that_dies_mid_test_scores_nothing_it_had_not_answered(attacked):
    feedback = attacked[0]["dies_in_a_test"].feedback
    assert all("stopped answering" in feedback[q] for q in ("q2", "q3")), feedback


def test_no_grading_process_or_pipe_is_left_behind(attacked):
    """No process that these grades started is left: runners, kernels, judges, nor
    what the attacks started in the background (they all carry the marker)."""
    marker = attacked[2].encode()
    left = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and marker in _environment(pid).split(b"\0")
    ]
    assert left == []
    assert not list(attacked[1].glob("**/requests"))


def _environment(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_a_hidden_seed_redraws_the_hidden_tests_inputs(tmp_path):
    """With the instructor's seed, a hidden test draws inputs no one saw: an answer
    memorised for the published inputs fails, the real one still passes; the
    library's seeding is restored afterwards."""
    pytest.importorskip("otter")
    test = tmp_path / "q1.py"
    test.write_text(
        "from otter.test_files import test_case\n\nOK_FORMAT = False\n\n"
        'name = "q1"\npoints = 1\nall_or_nothing = True\n\n'
        "@test_case(points=None, hidden=True)\n"
        "def test_double(double):\n"
        "    import torch\n"
        "    torch.manual_seed(3)\n"
        "    x = torch.rand(4)\n"
        "    assert torch.equal(double(x), 2 * x)\n"
    )
    torch.manual_seed(3)
    published = torch.rand(4)

    def memorised(x):
        return 2 * published if torch.equal(x, published) else torch.zeros(4)

    def honest(x):
        return 2 * x

    def score(double, seed):
        return judge.run_question(str(test), {"double": double}, 30, seed)[0]

    assert score(memorised, None) == 1
    assert score(memorised, 1234) == 0
    assert score(honest, 1234) == 1
    torch.manual_seed(3)
    assert torch.equal(torch.rand(4), published)


# ---------------------------------------------------------------------- on Gradescope


def _autograder(root, seed=None):
    """A Gradescope container's ``/autograder`` at ``root``: ``source`` as the zips of
    ``make exercises`` hold it (for the exercise ch99 of :data:`TESTS`), an empty
    ``submission``."""
    _write_tests(root / "source" / "tests")
    (root / "source" / "run_otter.py").write_text(gradescope.ENTRY)
    settings = {"exercise": "ch99", "hidden_seed": seed}
    (root / "source" / gradescope.SETTINGS).write_text(json.dumps(settings))
    (root / "submission").mkdir()
    return root


@pytest.mark.parametrize(
    "name", ["honest", "patched_otter", "always_equal", "forged_scores"]
)
def test_on_gradescope_the_judge_scores_each_attack_as_it_deserves(tmp_path, name):
    """Gradescope's container has no bubblewrap: the kernel runs unsandboxed, and the
    wall between kernel and judge still decides. Each submission in a container of
    its own, as Gradescope runs them."""
    pytest.importorskip("otter")
    root = _autograder(tmp_path / "autograder")
    _write_attack(name, root / "submission" / "ch99_answers.ipynb")
    if name == "honest":  # the zip's entry point, with Gradescope's limits
        assert gradescope.main([str(root)]) == 0
    else:  # the attacks break the kernel's answers: shorter waits
        limits = Limits(cell_timeout=30, test_timeout=8, total_timeout=240)
        gradescope.write_results(root, gradescope.grade_autograder(root, limits))
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == ATTACKS[name][1], results
    assert [t["name"] for t in results["tests"]] == ["q1", "q2", "q3"]
    assert sum(t["score"] for t in results["tests"]) == results["score"]
    assert all(t["max_score"] == 1 for t in results["tests"])


def test_gradescope_refuses_what_it_cannot_grade_with_a_reason(tmp_path):
    root = _autograder(tmp_path / "autograder")
    for name in ("a.ipynb", "b.ipynb"):
        (root / "submission" / name).write_text("{}")
    outcome = gradescope.grade_autograder(root)
    assert outcome["score"] == 0
    assert "exactly one" in outcome["output"]
    assert "a.ipynb" in outcome["output"]
    (root / "source" / gradescope.SETTINGS).write_text('{"exercise": "../ch01"}')
    assert "no exercise" in gradescope.grade_autograder(root)["output"]
    (root / "source" / gradescope.SETTINGS).write_text(
        '{"exercise": "ch99", "hidden_seed": "1"}'
    )
    assert "integer" in gradescope.grade_autograder(root)["output"]


def test_a_sealed_zip_carries_the_instructor_s_hidden_seed(tmp_path):
    root = _autograder(tmp_path / "autograder")
    archive = tmp_path / "public.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((root / "source").rglob("*")):
            zipped.write(path, path.relative_to(root / "source"))
    assert (
        gradescope.main(["--seal", "1234", str(archive), str(tmp_path / "p.zip")]) == 0
    )
    with zipfile.ZipFile(tmp_path / "p.zip") as zipped:
        assert sorted(zipped.namelist()) == sorted(zipfile.ZipFile(archive).namelist())
        zipped.extractall(tmp_path / "sealed")
    assert gradescope.settings_of(tmp_path / "sealed") == {
        "exercise": "ch99",
        "hidden_seed": 1234,
    }


def test_gradescope_grades_with_the_zip_s_hidden_seed(tmp_path, monkeypatch):
    root = _autograder(tmp_path / "autograder", seed=1234)
    _write_attack("honest", root / "submission" / "ch99_answers.ipynb")
    seen = {}

    def grade_notebook(path, autograder, exercise, limits):
        seen.update(exercise=exercise, limits=limits)
        return grades.Grade(path.name, exercise, {"q1": 1.0}, {"q1": 1.0})

    monkeypatch.setattr(gradescope, "grade_notebook", grade_notebook)
    outcome = gradescope.grade_autograder(root, Limits(test_timeout=8, sandbox=True))
    assert outcome["score"] == 1
    assert seen["exercise"] == "ch99"
    assert seen["limits"].hidden_seed == 1234
    assert seen["limits"].test_timeout == 8
    assert not seen["limits"].sandbox  # the container is the sandbox
