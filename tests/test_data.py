import hashlib
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from lic_teach import data


def _save(tmp_path, image, name):
    path = tmp_path / name
    image.save(path)
    return path


def test_rgb_png_roundtrip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    x = data.load_image(_save(tmp_path, Image.fromarray(array), "rgb.png"))
    assert x.shape == (3, 17, 23)
    assert x.dtype == torch.float32
    assert torch.equal(
        (x * 255).round().byte().permute(1, 2, 0), torch.from_numpy(array)
    )


def test_grayscale_becomes_three_equal_channels(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    x = data.load_image(_save(tmp_path, Image.fromarray(array, mode="L"), "gray.png"))
    assert x.shape == (3, 6, 10)
    assert torch.equal(x[0], x[1])
    assert torch.equal(x[1], x[2])
    assert torch.allclose(x[0], torch.from_numpy(array).float() / 255)


def test_16_bit_grayscale_uses_the_full_range(tmp_path):
    array = np.array([[0, 1000, 40000, 65535]], dtype=np.uint16)
    x = data.load_image(_save(tmp_path, Image.fromarray(array), "gray16.png"))
    assert torch.allclose(
        x[0, 0], torch.tensor([0, 1000, 40000, 65535]) / 65535.0, atol=1e-6
    )


def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[..., 0] = 255  # red
    array[:2, :, 3] = 255  # top half opaque, bottom half transparent
    x = data.load_image(
        _save(tmp_path, Image.fromarray(array, mode="RGBA"), "rgba.png")
    )
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(x[:, 3, 0], torch.tensor([1.0, 1.0, 1.0]))


def test_palette_png_with_transparency(tmp_path):
    image = Image.new("P", (5, 5), 0)
    image.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 1
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)
    x = data.load_image(path)
    assert torch.allclose(x[:, 1, 1], torch.tensor([0.0, 0.0, 1.0]))  # blue, opaque
    assert torch.allclose(
        x[:, 0, 0], torch.tensor([1.0, 1.0, 1.0])
    )  # transparent -> white


def test_jpeg_and_gray_alpha(tmp_path):
    x = data.load_image(
        _save(tmp_path, Image.new("RGB", (9, 7), (10, 200, 30)), "a.jpg")
    )
    assert x.shape == (3, 7, 9)
    assert abs(float(x[1].mean()) - 200 / 255) < 0.02
    la = Image.new("LA", (3, 3), (0, 0))
    assert torch.allclose(
        data.load_image(_save(tmp_path, la, "la.png")), torch.ones(3, 3, 3)
    )


def test_missing_and_non_image_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.load_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        data.load_image(tmp_path / "text.png")


def test_to_pil_checks_shape_and_clamps():
    image = data.to_pil(torch.tensor([[[2.0]], [[-1.0]], [[0.5]]]))
    assert image.getpixel((0, 0)) == (255, 0, 128)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        data.to_pil(torch.zeros(4, 2, 2))


def test_sample_images_offline_with_disjoint_held_out_split():
    train, test = data.sample_images("train"), data.sample_images("test")
    assert len(train) >= 4
    assert len(test) >= 2
    assert not set(train) & set(test)
    train_hashes = {
        hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in train.values()
    }
    assert not train_hashes & {
        hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in test.values()
    }
    for x in list(train.values()) + list(test.values()):
        assert x.shape[0] == 3
        assert min(x.shape[1:]) >= 256
        assert 0 <= x.min()
        assert x.max() <= 1
        assert float(x.std()) > 0.05  # real photos, not flat placeholders
    transfer = data.sample_images("transfer")
    assert len(transfer) == 6
    assert not set(transfer) & (set(train) | set(test))
    for x in transfer.values():
        assert x.shape[0] == 3
        assert min(x.shape[1:]) >= 256
        assert float(x.std()) > 0.02
    with pytest.raises(ValueError, match="train, test, transfer"):
        data.sample_images("validation")


def test_sample_images_are_found_without_importing_their_packages(monkeypatch):
    # importing scikit-learn takes seconds, in every chapter's kernel
    code = (
        "import sys; from lic_teach import data; data.sample_images('test'); "
        "print('sklearn' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip() == "False", run.stderr
    missing = {"test": [("astronaut", "no_such_package_lic", "data/astronaut.png")]}
    monkeypatch.setattr(data, "_SAMPLES", missing)
    with pytest.raises(RuntimeError, match="no_such_package_lic.*not installed"):
        data.sample_image_paths("test")


def test_random_crops_are_patches_of_the_images():
    image = torch.arange(3 * 20 * 30, dtype=torch.float32).reshape(3, 20, 30)
    torch.manual_seed(0)
    dataset = data.RandomCropDataset([image], patch_size=8, length=5, flip=False)
    assert len(dataset) == 5
    patch = dataset[3]
    top, left = divmod(int(patch[0, 0, 0]) % 600, 30)
    assert torch.equal(patch, image[:, top : top + 8, left : left + 8])
    torch.manual_seed(1)
    first = [dataset[i] for i in range(5)]
    torch.manual_seed(1)
    assert all(torch.equal(a, dataset[i]) for i, a in enumerate(first))


def test_random_crop_bad_inputs():
    with pytest.raises(ValueError, match="smaller than the patch"):
        data.RandomCropDataset([torch.zeros(3, 10, 10)], patch_size=16)
    with pytest.raises(ValueError, match="at least one"):
        data.RandomCropDataset([], patch_size=16)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        data.RandomCropDataset([torch.zeros(10, 10)], patch_size=4)


def test_center_crop():
    x = torch.arange(100.0).reshape(1, 10, 10)
    assert torch.equal(data.center_crop(x, 2), x[:, 4:6, 4:6])
    with pytest.raises(ValueError):
        data.center_crop(x, 11)


# ------------------------------------------------------------------------ Kodak,
# offline


def test_checksum_table_is_complete():
    sums = data.kodak_checksums()
    assert sorted(sums) == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in sums.values())


def _fake_kodak(monkeypatch, payloads):
    """Replace the checksum table by one for small fake files."""
    table = {name: hashlib.sha256(body).hexdigest() for name, body in payloads.items()}
    monkeypatch.setattr(data, "kodak_checksums", lambda: table)
    return table


class _Response:
    def __init__(self, body):
        self.body = body

    def read(self):
        return self.body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _png_bytes(value):
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_kodak_refused_connection_is_a_clear_error(tmp_path, monkeypatch):
    # A real socket error, no network needed: nothing listens on port 9 of this machine.
    monkeypatch.setattr(data, "KODAK_URL", "http://127.0.0.1:9/")
    with pytest.raises(ConnectionError, match="offline"):
        data.kodak(tmp_path / "kodak", timeout=5)
    assert not any((tmp_path / "kodak").glob("*"))


def test_kodak_offline_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="could not download .*kodim01.png"):
        data.kodak(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_kodak_corrupted_download_leaves_nothing(tmp_path, monkeypatch):
    payloads = {"kodim01.png": _png_bytes(1), "kodim02.png": _png_bytes(2)}
    _fake_kodak(monkeypatch, payloads)
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda url, timeout: _Response(b"garbage")
    )
    with pytest.raises(ValueError, match="SHA-256"):
        data.kodak(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_kodak_download_verifies_and_reuses(tmp_path, monkeypatch):
    payloads = {"kodim01.png": _png_bytes(10), "kodim02.png": _png_bytes(20)}
    _fake_kodak(monkeypatch, payloads)
    requested = []

    def serve(url, timeout):
        requested.append(url)
        return _Response(payloads[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    images = data.kodak(tmp_path)
    assert sorted(images) == ["kodim01", "kodim02"]
    assert len(requested) == 2
    assert torch.allclose(images["kodim02"], torch.full((3, 3, 4), 20 / 255))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kodim01.png", "kodim02.png"]
    data.kodak(tmp_path)  # everything present: no new request
    assert len(requested) == 2
    (tmp_path / "kodim01.png").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="checksum"):
        data.kodak(tmp_path, download=False)


def test_kodak_without_download_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="24 Kodak file"):
        data.kodak(tmp_path, download=False)


def _write_png16(path, array):
    """A 16-bit RGB or RGBA PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    height, width, planes = array.shape
    raw = b"".join(
        b"\x00" + array[row].astype(">u2").tobytes() for row in range(height)
    )

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(
        ">IIBBBBB", width, height, 16, 2 if planes == 3 else 6, 0, 0, 0
    )
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_16_bit_rgb_png_keeps_full_precision(tmp_path):
    array = np.random.default_rng(0).integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    x = data.load_image(_write_png16(tmp_path / "rgb16.png", array))
    expected = (
        torch.from_numpy(array.astype(np.float64) / 65535).permute(2, 0, 1).float()
    )
    assert x.shape == (3, 5, 7)
    assert torch.allclose(x, expected, atol=1e-7)


def test_16_bit_rgba_png_is_composited_on_white(tmp_path):
    array = np.zeros((2, 2, 4), dtype=np.uint16)
    array[0, :, 3] = 65535  # top row opaque black, bottom row transparent
    x = data.load_image(_write_png16(tmp_path / "rgba16.png", array))
    assert torch.allclose(x[:, 0, 0], torch.zeros(3))
    assert torch.allclose(x[:, 1, 0], torch.ones(3))


def test_truncated_png_is_a_clear_error(tmp_path):
    array = np.zeros((4, 4, 3), dtype=np.uint16)
    path = _write_png16(tmp_path / "cut16.png", array)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="not an image"):
        data.load_image(path)
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    (tmp_path / "cut8.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ValueError, match="not an image"):
        data.load_image(tmp_path / "cut8.png")
    for length in (0, 8, 20, 25):  # shorter than the header read to find 16-bit PNGs
        (tmp_path / "stub.png").write_bytes(good.read_bytes()[:length])
        with pytest.raises(ValueError, match="not an image"):
            data.load_image(tmp_path / "stub.png")


def test_downscaled_shrinks_without_leaving_the_unit_range():
    x = torch.rand(3, 40, 60)
    half = data.downscaled(x, 0.5)
    assert half.shape == (3, 20, 30)
    assert 0 <= float(half.min())
    assert float(half.max()) <= 1
    flat = torch.full((3, 40, 60), 0.25)
    assert torch.allclose(
        data.downscaled(flat, 0.75), torch.full((3, 30, 45), 0.25), atol=1e-6
    )
    assert data.downscaled(x, 1.0) is x
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="scale"):
            data.downscaled(x, bad)


def test_an_image_past_pillows_size_guard_is_a_clear_error(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels: a "bomb"
    with pytest.raises(ValueError, match="too large an image"):
        data.load_image(tmp_path / "big.png")
