from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 1
all_or_nothing = True

@test_case(points=None, hidden=False)
def test_decoder_gain_numbers(bpp_before, bpp_after, psnr_before, psnr_after, psnr_gain):
    values = dict(bpp_before=bpp_before, bpp_after=bpp_after, psnr_before=psnr_before, psnr_after=psnr_after, psnr_gain=psnr_gain)
    for name, value in values.items():
        assert isinstance(value, (int, float)), f'{name} should be a number you measured, got {value!r}'
    assert bpp_after == bpp_before, 'the encoder and entropy model are frozen: the bitstream cannot change'
    assert abs(psnr_gain - (psnr_after - psnr_before)) < 1e-09, 'psnr_gain must be psnr_after - psnr_before'

@test_case(points=None, hidden=True)
def test_decoder_gain_measured(bpp_before, psnr_before, psnr_after, model):
    import torch
    from lic_teach.data import RandomCropDataset, center_crop, sample_images
    from lic_teach.metrics import psnr
    from lic_teach.models import FactorizedPrior
    from lic_teach.train import fit
    x = center_crop(sample_images('test')['astronaut'], 128)
    assert abs(psnr_after - psnr(x, model.decompress(model.compress(x)))) < 0.001, "psnr_after is not the fine-tuned model's"
    torch.manual_seed(0)
    before = FactorizedPrior(N=16, M=16)
    crops = RandomCropDataset(list(sample_images('train').values()), patch_size=64, length=1000)
    fit(before, crops, steps=40, lmbda=0.01, lr=0.001, batch_size=4, progress=False)
    before.eval()
    data = before.compress(x)
    assert abs(bpp_before - 8 * len(data) / 128 ** 2) < 1e-06, 'bpp_before is not the real rate before fine-tuning'
    assert abs(psnr_before - psnr(x, before.decompress(data))) < 0.001, 'psnr_before is not the PSNR before fine-tuning'

