"""Image-quality metrics (course_lib.metrics): L1, PSNR, SSIM, LPIPS and FID."""

import socket
import sys
import urllib.request

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms.functional as TF
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr
from skimage.metrics import structural_similarity as skimage_ssim
from torchmetrics.functional.image import peak_signal_noise_ratio as torchmetrics_psnr
from torchmetrics.image import LearnedPerceptualImagePatchSimilarity as TorchmetricsLpips
from torchmetrics.image import StructuralSimilarityIndexMeasure

from course_lib import config, masks, metrics
from course_lib.data import PhotoPatches

BATCH = 8
SIZE = 64

# ---------------------------------------------------------------------------------------------
# Test images: real photo patches and corrupted versions of them
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return PhotoPatches(patch_size=SIZE, split="test", seed=0).batch(0, BATCH)  # (B, 3, H, W)


@pytest.fixture(scope="module")
def hole() -> torch.Tensor:
    return masks.generate("irregular", BATCH, SIZE, SIZE, coverage=0.3, seed=1)  # (B, 1, H, W)


def add_noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (images + sigma * torch.randn(images.shape, generator=generator)).clamp(0, 1)


def corrupt(images: torch.Tensor, hole: torch.Tensor, kind: str) -> torch.Tensor:
    """Noise, blur, or an inpainting-like composite (holes filled with a blurred guess)."""
    if kind == "noise":
        return add_noise(images, 0.1)
    blurred = TF.gaussian_blur(images, kernel_size=7, sigma=2.0)
    if kind == "blur":
        return blurred
    return hole * blurred + (1 - hole) * images


CORRUPTIONS = ("noise", "blur", "inpainting")


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, C) float64 array, as scikit-image expects."""
    return image.permute(1, 2, 0).double().numpy()


# ---------------------------------------------------------------------------------------------
# L1
# ---------------------------------------------------------------------------------------------


def test_l1_matches_a_direct_numpy_computation(photos, hole):
    prediction = corrupt(photos, hole, "noise")
    error = np.abs(prediction.double().numpy() - photos.double().numpy())  # (B, C, H, W)
    region = hole.numpy()[:, 0] == 1  # (B, H, W)
    expected = {
        "all": [sample.mean() for sample in error],
        "hole": [sample[:, inside].mean() for sample, inside in zip(error, region, strict=True)],
        "valid": [sample[:, ~inside].mean() for sample, inside in zip(error, region, strict=True)],
    }
    assert metrics.l1(prediction, photos).shape == (BATCH,)
    np.testing.assert_allclose(metrics.l1(prediction, photos), expected["all"], rtol=1e-5)
    for region_name in ("hole", "valid"):
        result = metrics.l1(prediction, photos, hole, region=region_name)
        np.testing.assert_allclose(result, expected[region_name], rtol=1e-5)


def test_hole_and_valid_l1_split_the_total(photos, hole):
    prediction = corrupt(photos, hole, "noise").double()
    target = photos.double()
    fraction = hole.double().mean(dim=(1, 2, 3))  # (B,)
    inside = metrics.l1(prediction, target, hole, region="hole")
    outside = metrics.l1(prediction, target, hole, region="valid")
    total = metrics.l1(prediction, target)
    torch.testing.assert_close(
        fraction * inside + (1 - fraction) * outside, total, rtol=0, atol=1e-14
    )


def test_composite_is_exact_outside_the_hole(photos, hole):
    composite = corrupt(photos, hole, "inpainting")
    assert torch.equal(metrics.l1(composite, photos, hole, region="valid"), torch.zeros(BATCH))
    assert (metrics.l1(composite, photos, hole, region="hole") > 0).all()


def test_empty_regions_are_reported_with_their_samples(photos):
    mask = torch.zeros(4, 1, SIZE, SIZE)
    mask[0, :, :8] = 1  # sample 0 has a hole, samples 1-3 have none
    mask[3] = 1  # sample 3 is all hole
    images, target = photos[:4], add_noise(photos[:4], 0.1)
    with pytest.raises(ValueError, match=r"samples \[1, 2\].*all-valid"):
        metrics.l1(images, target, mask, region="hole")
    with pytest.raises(ValueError, match=r"samples \[3\].*all-hole"):
        metrics.l1(images, target, mask, region="valid")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"region": "hole"}, "needs the hole mask"),
        ({"region": "inside"}, "region must be 'all', 'hole' or 'valid'"),
        ({"hole": torch.ones(2, 1, 16, 16)}, "ignores it"),
        ({"hole": torch.full((2, 1, 16, 16), 0.5), "region": "hole"}, "must be binary"),
        ({"hole": torch.ones(2, 1, 8, 8), "region": "hole"}, "does not match the image"),
    ],
)
def test_bad_l1_arguments_are_explained(options, message):
    with pytest.raises(ValueError, match=message):
        metrics.l1(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), **options)


def test_per_pixel_error_is_the_picture_of_l1(photos, hole):
    prediction = corrupt(photos, hole, "noise")
    picture = metrics.per_pixel_error(prediction, photos)
    assert picture.shape == (BATCH, 1, SIZE, SIZE)
    torch.testing.assert_close(picture.mean(dim=(1, 2, 3)), metrics.l1(prediction, photos))


# ---------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_psnr_matches_scikit_image_and_torchmetrics(photos, hole, kind):
    prediction = corrupt(photos, hole, kind)
    ours = metrics.psnr(prediction, photos)
    assert ours.shape == (BATCH,)
    from_skimage = [
        skimage_psnr(target.double().numpy(), image.double().numpy(), data_range=1.0)
        for image, target in zip(prediction, photos, strict=True)
    ]
    np.testing.assert_allclose(ours, from_skimage, rtol=0, atol=1e-4)
    from_torchmetrics = torchmetrics_psnr(
        prediction, photos, data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    torch.testing.assert_close(ours, from_torchmetrics, rtol=0, atol=1e-4)


def test_psnr_of_identical_images_is_infinite(photos):
    prediction = photos.clone()
    prediction[1] = add_noise(photos[1:2], 0.1)[0]
    result = metrics.psnr(prediction, photos)
    assert result[0] == float("inf") and torch.isfinite(result[1])


def test_psnr_rejects_a_bad_data_range(photos):
    with pytest.raises(ValueError, match="data_range must be a positive"):
        metrics.psnr(photos, photos, data_range=0)


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def loop_ssim_map(x: np.ndarray, y: np.ndarray, border: str) -> np.ndarray:
    """SSIM the slow, obvious way: visit every pixel, gather its 11x11 window, compute the
    weighted statistics from their definitions. x, y: (C, H, W) float64; returns (H', W')."""
    size, sigma, c1, c2 = 11, 1.5, 0.01**2, 0.03**2
    radius = size // 2
    bell = np.exp(-((np.arange(size) - radius) ** 2) / (2 * sigma**2))
    weights = np.outer(bell, bell) / np.outer(bell, bell).sum()  # (11, 11), sums to 1
    channels, height, width = x.shape

    def mirror(index: int, length: int) -> int:
        # Reflect about the outermost pixel: -1 -> 1, length -> length - 2.
        if index < 0:
            return -index
        return 2 * (length - 1) - index if index >= length else index

    if border == "reflect":
        rows, columns = range(height), range(width)
    else:  # "crop": only pixels whose window fits inside the image
        rows, columns = range(radius, height - radius), range(radius, width - radius)
    result = np.zeros((channels, len(rows), len(columns)))
    for c in range(channels):
        for out_row, row in enumerate(rows):
            for out_column, column in enumerate(columns):
                around = [
                    [(mirror(row + dr, height), mirror(column + dc, width)) for dc in range(-5, 6)]
                    for dr in range(-5, 6)
                ]
                wx = np.array([[x[c, i, j] for i, j in line] for line in around])
                wy = np.array([[y[c, i, j] for i, j in line] for line in around])
                mean_x, mean_y = (weights * wx).sum(), (weights * wy).sum()
                var_x = (weights * (wx - mean_x) ** 2).sum()
                var_y = (weights * (wy - mean_y) ** 2).sum()
                cov = (weights * (wx - mean_x) * (wy - mean_y)).sum()
                result[c, out_row, out_column] = (
                    (2 * mean_x * mean_y + c1)
                    * (2 * cov + c2)
                    / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
                )
    return result.mean(axis=0)


@pytest.mark.parametrize("border", ["reflect", "crop"])
def test_ssim_map_equals_the_pixel_loop(photos, border):
    target = photos[:1, :, 20:36, 30:46].double()  # a 16x16 piece of a real photo
    prediction = add_noise(target, 0.1, seed=3)
    fast = metrics.ssim_map(prediction, target, border=border)
    expected = loop_ssim_map(prediction[0].numpy(), target[0].numpy(), border)
    assert fast.shape == (1, 1, *expected.shape)
    np.testing.assert_allclose(fast[0, 0].numpy(), expected, rtol=0, atol=1e-12)


def ssim_from_torchmetrics(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    measure = StructuralSimilarityIndexMeasure(
        gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, reduction="none"
    )
    return measure(prediction, target)


def ssim_from_skimage(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    values = [
        skimage_ssim(
            to_numpy(image),
            to_numpy(reference),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        for image, reference in zip(prediction, target, strict=True)
    ]
    return torch.tensor(values)


@pytest.mark.parametrize("colour", ["rgb", "grey"])
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_ssim_matches_both_libraries_in_their_conventions(photos, hole, kind, colour):
    target = photos if colour == "rgb" else photos.mean(dim=1, keepdim=True)
    prediction = corrupt(target, hole, kind)
    reflect = metrics.ssim(prediction, target)  # torchmetrics' convention, the default
    crop = metrics.ssim(prediction, target, border="crop")  # scikit-image's
    assert reflect.shape == crop.shape == (BATCH,)
    from_torchmetrics = ssim_from_torchmetrics(prediction, target)
    from_skimage = ssim_from_skimage(prediction, target)
    torch.testing.assert_close(reflect, from_torchmetrics, rtol=0, atol=1e-4)
    torch.testing.assert_close(crop.double(), from_skimage, rtol=0, atol=1e-4)
    # The two libraries really disagree (by up to 0.027 here): the border convention matters.
    assert (from_torchmetrics.double() - from_skimage).abs().max() > 1e-3


def test_ssim_map_shapes_follow_the_border_convention(photos):
    prediction = add_noise(photos, 0.05)
    assert metrics.ssim_map(prediction, photos).shape == (BATCH, 1, SIZE, SIZE)
    cropped = metrics.ssim_map(prediction, photos, border="crop")
    assert cropped.shape == (BATCH, 1, SIZE - 10, SIZE - 10)
    # Away from the border strip the two conventions agree exactly.
    torch.testing.assert_close(
        metrics.ssim_map(prediction, photos)[..., 5:-5, 5:-5], cropped, rtol=0, atol=1e-6
    )


def test_ssim_of_an_image_with_itself_is_one(photos):
    torch.testing.assert_close(metrics.ssim(photos, photos), torch.ones(BATCH), rtol=0, atol=1e-6)


def test_ssim_is_symmetric(photos, hole):
    prediction = corrupt(photos, hole, "inpainting")
    torch.testing.assert_close(
        metrics.ssim(prediction, photos), metrics.ssim(photos, prediction), rtol=0, atol=1e-6
    )


def test_ssim_drops_as_noise_grows(photos):
    scores = torch.stack([metrics.ssim(add_noise(photos, s), photos) for s in (0.02, 0.05, 0.1)])
    assert (scores[1:] < scores[:-1]).all()  # every image, every step


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window_size": 10}, "odd positive int"),
        ({"sigma": -1.0}, "sigma must be a positive"),
        ({"border": "zeros"}, "border must be 'reflect' or 'crop'"),
        ({"window_size": 21}, r"at least as large as its 21x21 window"),
    ],
)
def test_bad_ssim_arguments_are_explained(photos, options, message):
    with pytest.raises(ValueError, match=message):
        metrics.ssim(photos[:, :, :16, :16], photos[:, :, :16, :16], **options)


# ---------------------------------------------------------------------------------------------
# Inputs and devices, for every metric
# ---------------------------------------------------------------------------------------------

PER_IMAGE_METRICS = [metrics.l1, metrics.psnr, metrics.ssim, metrics.per_pixel_error]


@pytest.mark.parametrize("metric", PER_IMAGE_METRICS)
@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (
            torch.rand(2, 3, 16, 16),
            torch.rand(2, 3, 16, 12),
            r"prediction of shape \(2, 3, 16, 16\) does not match target of shape \(2, 3, 16, 12\)",
        ),
        (torch.rand(2, 3, 16, 16), torch.rand(3, 3, 16, 16), "does not match target"),
        (torch.rand(2, 3, 16, 16) * 255, torch.rand(2, 3, 16, 16), r"must lie in \[0, 1\]"),
        (torch.rand(2, 3, 16, 16), torch.full((2, 3, 16, 16), float("nan")), "target values"),
        (torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16), "3 channels"),
        (torch.rand(3, 16, 16), torch.rand(3, 16, 16), r"unsqueeze\(0\)"),
        (torch.rand(2, 3, 16, 16).to(torch.uint8), torch.rand(2, 3, 16, 16), "floating-point"),
    ],
)
def test_bad_images_are_explained(metric, prediction, target, message):
    with pytest.raises(ValueError, match=message):
        metric(prediction, target)


@pytest.mark.parametrize("metric", PER_IMAGE_METRICS)
def test_metrics_run_on_the_course_device(photos, metric):
    device = config.device()
    prediction, target = add_noise(photos, 0.1).to(device), photos.to(device)
    result = metric(prediction, target)
    assert result.device.type == device.type and result.shape[0] == BATCH
    torch.testing.assert_close(result.cpu(), metric(prediction.cpu(), target.cpu()))


def test_half_precision_inputs_are_scored_in_float32(photos):
    prediction = add_noise(photos, 0.1)
    result = metrics.psnr(prediction.half(), photos.half())
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, metrics.psnr(prediction, photos), rtol=0, atol=0.05)


# ---------------------------------------------------------------------------------------------
# LPIPS and FID: pretrained weights, present or not
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to download or open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a metric tried to use the network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch, offline):
    """Point torch.hub at an empty folder; return its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    assert torch.hub.get_dir() == str(tmp_path / "hub")  # nobody called torch.hub.set_dir
    checkpoints.mkdir(parents=True)
    return checkpoints


def write_fake_alexnet(path) -> None:
    """A stand-in for torchvision's AlexNet file: random convolutions, a zero classifier.

    The classifier is a stride-0 view of a single zero, so the file stays small (torch.save
    stores the one-number storage) and torchvision can still load it strictly.
    """
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {
            name: value.shape for name, value in torchvision.models.alexnet().state_dict().items()
        }
    state = {
        name: 0.05 * torch.randn(shape, generator=generator)
        if name.startswith("features.")
        else torch.zeros(1).expand(shape)
        for name, shape in shapes.items()
    }
    torch.save(state, path)


def test_lpips_without_weights_says_what_is_missing_and_how_to_get_it(photos, empty_hub):
    with pytest.raises(metrics.MissingWeightsError) as caught:
        metrics.lpips(photos, photos)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.missing == (empty_hub / "alexnet-owt-7be5be79.pth",)
    for part in (str(empty_hub), "alexnet-owt-7be5be79.pth", "weights='DEFAULT'", "TORCH_HOME"):
        assert part in message
    with pytest.raises(metrics.MissingWeightsError, match="vgg16-397923af.pth"):
        metrics.lpips(photos, photos, net="vgg")


def test_lpips_with_weights_equals_torchmetrics(photos, hole, empty_hub):
    write_fake_alexnet(empty_hub / "alexnet-owt-7be5be79.pth")
    prediction = corrupt(photos, hole, "inpainting")
    ours = metrics.lpips(prediction, photos)
    assert ours.shape == (BATCH,) and (ours > 0).all()
    # torchmetrics finds the same file in the torch.hub cache, so it does not download either.
    reference = TorchmetricsLpips(net_type="alex", normalize=True, reduction="none")
    torch.testing.assert_close(ours, reference(prediction, photos), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(metrics.lpips(photos, photos), torch.zeros(BATCH))
    assert metrics.available()["lpips"].startswith("available")


def test_lpips_rejects_a_file_that_is_not_alexnet(photos, empty_hub):
    torch.save({"features.0.weight": torch.zeros(3, 3)}, empty_hub / "alexnet-owt-7be5be79.pth")
    with pytest.raises(ValueError, match="is not torchvision's alexnet ImageNet checkpoint"):
        metrics.lpips(photos, photos)


def test_lpips_needs_rgb(photos):
    grey = photos.mean(dim=1, keepdim=True)
    with pytest.raises(ValueError, match="LPIPS compares RGB"):
        metrics.lpips(grey, grey)


def test_fid_without_weights_says_what_is_missing_and_how_to_get_it(photos, empty_hub, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if it were not installed
    with pytest.raises(metrics.MissingWeightsError) as caught:
        metrics.fid(photos, photos)
    message = str(caught.value)
    assert caught.value.missing == (empty_hub / "weights-inception-2015-12-05-6726825d.pth",)
    assert str(empty_hub) in message and "load_state_dict_from_url" in message
    assert "pip install torch-fidelity" in message  # both problems at once, not one by one


def test_fid_with_weights_but_without_torch_fidelity_says_so(photos, empty_hub, monkeypatch):
    (empty_hub / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"stand-in")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if it were not installed
    with pytest.raises(ModuleNotFoundError, match="pip install torch-fidelity"):
        metrics.fid(photos, photos)


def test_fid_needs_two_images_per_set(photos):
    with pytest.raises(ValueError, match="at least 2 images"):
        metrics.fid(photos[:1], photos)


def test_available_reports_both_metrics(empty_hub):
    report = metrics.available()
    assert set(report) == {"lpips", "fid"}
    assert report["lpips"].startswith("unavailable:") and "alexnet-owt" in report["lpips"]
    assert report["fid"].startswith("unavailable:") and "weights-inception" in report["fid"]


def test_hole_psnr_is_the_whole_image_psnr_without_the_coverage_dilution():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 16, 16, generator=generator)
    hole = torch.zeros(2, 1, 16, 16)
    hole[0, :, :4] = 1  # 25% hole
    hole[1, :, :8] = 1  # 50% hole
    prediction = hole * torch.rand(2, 3, 16, 16, generator=generator) + (1 - hole) * target
    whole = metrics.psnr(prediction, target)
    inside = metrics.psnr(prediction, target, hole=hole, region="hole")
    mse_hole = ((prediction - target) ** 2 * hole).sum(dim=(1, 2, 3)) / (
        3 * hole.sum(dim=(1, 2, 3))
    )
    assert torch.allclose(inside, 10 * torch.log10(1 / mse_hole))
    coverage = torch.tensor([0.25, 0.5])
    assert torch.allclose(whole, inside - 10 * torch.log10(coverage), atol=1e-4)
    assert torch.isinf(metrics.psnr(prediction, target, hole=hole, region="valid")).all()
    with pytest.raises(ValueError, match="needs the hole mask"):
        metrics.psnr(prediction, target, region="hole")
    with pytest.raises(ValueError, match="undefined for samples"):
        metrics.psnr(prediction, target, hole=torch.zeros_like(hole), region="hole")
