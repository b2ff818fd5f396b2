import json
from pathlib import Path

import pytest
import torch

from lic_teach import baselines, data, metrics

REFERENCE = Path(baselines.__file__).parent / "reference"


@pytest.fixture(scope="module")
def photo():
    return data.center_crop(data.sample_images("test")["astronaut"], 256)


def test_roundtrip_codes_with_the_one_pillow_jpeg(photo):
    """``pillow_roundtrip`` and ``CLASSICAL["jpeg"]`` are one JPEG: the same bytes and
    the same decoded image; options such as 4:4:4 reach the encoder."""
    decoded, size = baselines.pillow_roundtrip(photo, "JPEG", 60)
    jpeg = baselines.CLASSICAL["jpeg"]
    stream = jpeg.compress(photo, 60)
    assert size == len(stream)
    assert torch.equal(decoded, jpeg.decompress(stream))
    _, full_chroma = baselines.pillow_roundtrip(photo, "JPEG", 60, subsampling=0)
    assert full_chroma > size


def test_rdcurve_is_the_one_of_metrics():
    """Students' notebooks import ``RDCurve`` from ``baselines``; it is ``metrics``'."""
    assert baselines.RDCurve is metrics.RDCurve


def test_reference_curves_match_the_published_files():
    curves = baselines.reference_curves()
    assert len(curves) == len(list(REFERENCE.glob("*.json"))) >= 30
    for stem, curve in curves.items():
        record = json.loads((REFERENCE / f"{stem}.json").read_text())["results"]
        assert curve.bpp == record["bpp"]
        assert "not measured" in curve.source
        assert len(curve.psnr) in (0, len(curve.bpp))
        assert all(0 < v < 1 for v in curve.ms_ssim)


def test_reference_ms_ssim_in_db_is_converted():
    curve = baselines.reference_curves(["paper-elic2022_ms-ssim"])[
        "paper-elic2022_ms-ssim"
    ]
    record = json.loads((REFERENCE / "paper-elic2022_ms-ssim.json").read_text())[
        "results"
    ]
    for db, value in zip(record["ms-ssim-db-rgb"], curve.ms_ssim):
        assert -10 * torch.log10(
            torch.tensor(1 - value, dtype=torch.float64)
        ) == pytest.approx(db)


def test_unknown_reference_is_a_clear_error():
    with pytest.raises(KeyError, match="available"):
        baselines.reference_curves(["no-such-codec"])


def test_jpeg_header_is_the_file_less_its_scan_data(photo):
    """Header bytes: a few hundred for any image, the same for a tiny and a large one at
    one quality, and the scan data (the rest) grows with the image."""
    small, large = photo[:, :16, :16], photo
    header = baselines.jpeg_header_bytes(large)
    assert 300 < header < 1000
    assert baselines.jpeg_header_bytes(small) == header
    _, size = baselines.pillow_roundtrip(large, "JPEG", 75)
    assert size > 3 * header


def test_psnr_at_rate_reads_the_curve_between_its_points():
    curve = baselines.RDCurve(name="c", bpp=[0.2, 0.4, 0.8], psnr=[26.0, 28.0, 30.0])
    assert baselines.psnr_at_rate(curve, 0.2) == 26.0
    assert baselines.psnr_at_rate(curve, 0.8) == 30.0
    assert baselines.psnr_at_rate(curve, 0.3) == pytest.approx(27.0)
    assert baselines.psnr_at_rate(curve, 0.6) == pytest.approx(29.0)
    with pytest.raises(ValueError, match="outside the range of c"):
        baselines.psnr_at_rate(curve, 0.9)
