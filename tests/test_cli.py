"""``lic-teach`` as a user types it: a real codec on the zoo, and one clear line with
exit status 2 for every kind of bad input, leaving nothing half-written."""

import csv
import io
import subprocess
import sys

import pytest
import torch

from lic_teach import baselines, cli, data, zoo
from lic_teach.models import FactorizedPrior


@pytest.fixture
def run(smoke_zoo, capsys):
    def run(*argv):
        status = cli.main(["--zoo", str(smoke_zoo[0]), *map(str, argv)])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture
def photo_png(tmp_path):
    path = tmp_path / "photo.png"
    data.to_pil(data.sample_images("test")["astronaut"][:, :70, :90]).save(path)
    return path


def test_compress_info_decompress(run, photo_png, tmp_path):
    lic, png = tmp_path / "photo.lic", tmp_path / "back.png"
    status, out, _ = run(
        "compress", photo_png, lic, "--model", "factorized", "--quality", "2"
    )
    assert status == 0
    assert "bpp" in out
    assert lic.stat().st_size > 0
    status, out, _ = run("info", lic)
    assert status == 0
    assert "factorized q2" in out
    assert "90x70" in out
    assert f"{lic.stat().st_size} bytes" in out
    status, _, _ = run("decompress", lic, png)  # no flags: the header names the model
    assert status == 0
    assert data.load_image(png).shape == (3, 70, 90)
    status, _, _ = run("decompress", lic, tmp_path / "back.bmp")
    assert status == 0
    assert data.load_image(tmp_path / "back.bmp").shape == (3, 70, 90)


def test_defaults_are_the_best_family_at_its_middle_quality(
    run, photo_png, tmp_path, smoke_zoo
):
    status, out, _ = run("compress", photo_png, tmp_path / "x.lic")
    assert status == 0
    assert f"({zoo.default_family(smoke_zoo[0])} q2," in out


def test_eval_writes_a_csv_with_jpeg_rows(run, photo_png, tmp_path):
    status, out, err = run(
        "eval",
        photo_png.parent,
        "--model",
        "mean-scale",
        "--quality",
        "1",
        "--jpeg",
        "--no-cache",
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0
    assert [r["codec"] for r in rows] == [
        "mean-scale q1",
        "jpeg (closest size)",
    ]
    assert float(rows[0]["bpp"]) > 0
    assert float(rows[0]["decode_s"]) > 0
    assert "per image" in err


def test_eval_sweeps_classical_codecs_and_caches_the_rows(
    run, photo_png, tmp_path, monkeypatch
):
    monkeypatch.setenv("LIC_TEACH_CACHE", str(tmp_path / "cache"))
    out_csv = tmp_path / "r.csv"
    arguments = ["eval", photo_png.parent, "--model", "factorized", "--quality", "1"]
    arguments += ["--classical", "jpeg-420,webp", "--out", out_csv]
    status, _, err = run(*arguments)
    rows = list(csv.DictReader(out_csv.open()))
    assert status == 0
    assert len(rows) == 1 + len(baselines.CLASSICAL["jpeg-420"].settings) + len(
        baselines.CLASSICAL["webp"].settings
    )
    assert {r["codec"] for r in rows} == {
        "factorized q1",
        "JPEG 4:2:0 (libjpeg-turbo)",
        "WebP (libwebp)",
    }
    cached = sorted((tmp_path / "cache" / "evaluations").glob("*.json"))
    assert len(cached) == len(rows)
    status, _, _ = run(*arguments, "--force")
    assert status == 0
    assert list(csv.DictReader(out_csv.open())) == rows
    assert "no classical codec 'bpg'" in _error(
        run, "eval", photo_png.parent, "--classical", "bpg"
    )


def test_eval_reports_a_codec_it_cannot_run(run, photo_png, monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    status, out, err = run("eval", photo_png.parent, "--classical", "all", "--no-cache")
    assert status == 0
    assert "WebP (libwebp) left out: imagecodecs is not installed" in err
    assert {r["codec"] for r in csv.DictReader(io.StringIO(out))} >= {
        "JPEG (Pillow)",
        "HEIC (x265, HEVC intra)",
    }


def test_zoo_lists_the_models(run):
    status, out, _ = run("zoo")
    assert status == 0
    assert out.count("\n") == 4
    assert "mean-scale q2" in out


def _error(run, *argv) -> str:
    status, out, err = run(*argv)
    assert status == 2, (status, err)
    assert err.count("\n") == 1, err
    assert err.startswith("lic-teach: "), err
    return err


def test_every_bad_input_is_one_line_and_status_2(run, photo_png, tmp_path):
    lic = tmp_path / "photo.lic"
    assert (
        run("compress", photo_png, lic, "--model", "factorized", "--quality", "1")[0]
        == 0
    )
    assert "no image file" in _error(
        run, "compress", tmp_path / "missing.png", tmp_path / "x.lic"
    )
    (tmp_path / "notes.png").write_text("not an image")
    assert "not an image" in _error(
        run, "compress", tmp_path / "notes.png", tmp_path / "x.lic"
    )
    assert "exists" in _error(run, "compress", photo_png, lic)
    assert (
        run(
            "compress",
            photo_png,
            lic,
            "--force",
            "--model",
            "factorized",
            "--quality",
            "1",
        )[0]
        == 0
    )
    assert "cannot write" in _error(
        run, "compress", photo_png, photo_png / "inside-a-file.lic"
    )
    assert "quality 7" in _error(
        run, "compress", photo_png, tmp_path / "y.lic", "--quality", "7"
    )
    content = lic.read_bytes()
    for name, bad in (
        ("truncated", content[:-9]),
        ("altered", content[:-6] + bytes([content[-6] ^ 1]) + content[-5:]),
        ("empty", b""),
    ):
        (tmp_path / f"{name}.lic").write_bytes(bad)
        _error(run, "decompress", tmp_path / f"{name}.lic", tmp_path / f"{name}.png")
        assert not (tmp_path / f"{name}.png").exists()
    torch.manual_seed(0)
    (tmp_path / "foreign.lic").write_bytes(
        FactorizedPrior(8, 12).eval().compress(torch.rand(3, 16, 16))
    )
    assert "no model of the zoo" in _error(run, "info", tmp_path / "foreign.lic")
    assert "no model of the zoo" in _error(
        run, "decompress", tmp_path / "foreign.lic", tmp_path / "f.png"
    )
    assert "cannot read" in _error(run, "info", tmp_path / "missing.lic")
    assert "not a folder" in _error(run, "eval", photo_png)
    assert not list(tmp_path.glob(".*.partial"))  # nothing half-written anywhere


def test_the_closest_jpeg_quality_is_found_by_bisection_as_by_trying_all(photo):
    x = photo[:, 200:296, 200:296]
    sizes = {q: baselines.pillow_roundtrip(x, "JPEG", q)[1] for q in range(1, 96)}
    for target in (
        sizes[3] - 50,
        sizes[17] + 3,
        sizes[50],
        sizes[80] - 7,
        sizes[95] + 500,
    ):
        best = min(abs(size - target) for size in sizes.values())
        assert abs(sizes[cli.closest_jpeg_quality(x, target)] - target) == best, target


def test_coding_with_a_zoo_model_imports_neither_compressai_models_nor_scipy():
    """What keeps ``lic-teach`` quick to start: CompressAI's ``ans`` extension is loaded
    by itself, without its package ``__init__`` (models, zoo, torchvision), and scipy
    not at all."""
    script = (
        "import sys, torch; from lic_teach import zoo; m = zoo.load('factorized', 1); "
        "x = torch.rand(3, 64, 64); m.decompress(m.compress(x)); "
        "print(sorted(k for k in sys.modules "
        "if k.split('.')[0] in ('compressai', 'scipy', 'torchvision')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['compressai.ans']", result.stdout


def test_eval_of_an_image_a_codec_cannot_code_is_one_line(run, tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    data.to_pil(torch.rand(3, 2, 16400)).save(folder / "strip.png")
    assert "WebP (libwebp) could not code a 16400x2 image" in _error(
        run, "eval", folder, "--classical", "webp", "--no-cache"
    )
