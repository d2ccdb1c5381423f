"""How good is an inpainting? L1, PSNR, SSIM, LPIPS and FID (lesson 02).

Every metric here compares a *prediction* with its *target* (the ground truth). Conventions:

* Inputs are float tensors ``(B, C, H, W)`` in ``[0, 1]`` with ``C = 3`` (RGB) or ``C = 1``
  (grey), on any device; prediction and target have the same shape. Computation happens in
  float32 (float64 if you pass float64), whatever precision the inputs come in.
* Every metric except FID returns **one value per image**, a tensor ``(B,)`` on the input's
  device. The caller averages, e.g. per coverage band and mask kind (``course_lib.evaluate``).
  FID compares two *sets* of images and returns a single number.
* Inpainting is scored on the composite ``hole * prediction + (1 - hole) * image``: outside
  the hole the composite equals the target, so whole-image numbers mix a perfect valid
  region with the hole; :func:`l1` can also measure the hole alone.
* Lower is better for L1, LPIPS and FID; higher is better for PSNR (dB) and SSIM (at most 1).

L1, PSNR and SSIM are written out here from their formulas. LPIPS and FID need networks
trained on ImageNet; their weights are downloaded once and cached by ``torch.hub``. Offline and
without those files the two functions raise :class:`MissingWeightsError`, saying which file is
missing, where it is expected and how to get it: a randomly initialised network would give
numbers that look plausible and mean nothing, so there is no fallback. :func:`available` says
which of the two can run on this machine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from course_lib.validate import check_image, check_mask

__all__ = [
    "FID_WEIGHTS_URL",
    "LPIPS_BACKBONES",
    "LpipsBackbone",
    "LpipsNetwork",
    "MissingWeightsError",
    "available",
    "fid",
    "gaussian_window",
    "hub_checkpoints",
    "l1",
    "lpips",
    "missing_weights_error",
    "per_pixel_error",
    "psnr",
    "ssim",
    "ssim_map",
    "torchvision_weights_how",
]

Region = Literal["all", "hole", "valid"]
Border = Literal["reflect", "crop"]

# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Check a prediction/target pair; return both in one floating dtype (at least float32).

    float16/bfloat16 inputs are promoted: squared errors of nearly equal images underflow in
    half precision, and a metric must not depend on the precision a model ran in.
    """
    check_image(prediction, "prediction", channels=None)
    check_image(target, "target", channels=None)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction of shape {tuple(prediction.shape)} does not match target of shape "
            f"{tuple(target.shape)}; a metric compares each image with its own ground truth, "
            "so batch size, channels, height and width must all agree."
        )
    if prediction.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have 3 channels (RGB) or 1 (grey), got {prediction.shape[1]} in "
            f"{tuple(prediction.shape)}; drop an alpha channel with image[:, :3]."
        )
    if prediction.device != target.device:
        raise ValueError(
            f"prediction is on {prediction.device} but target is on {target.device}; "
            "move both to one device first, e.g. target.to(prediction.device)."
        )
    dtype = torch.promote_types(torch.promote_types(prediction.dtype, target.dtype), torch.float32)
    return prediction.to(dtype), target.to(dtype)


def _check_positive(name: str, value: float) -> float:
    """Check a strictly positive, finite number (a data range, a sigma, a constant)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}.")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Pixel errors: L1 and PSNR
# ---------------------------------------------------------------------------------------------


def per_pixel_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Absolute error of every pixel, averaged over the channels: ``(B, 1, H, W)``.

    ``|prediction - target|`` as a picture: bright where the prediction is wrong. Its mean
    over the pixels is :func:`l1` with ``region="all"``.
    """
    prediction, target = _check_pair(prediction, target)
    return (prediction - target).abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)


def l1(
    prediction: torch.Tensor,
    target: torch.Tensor,
    hole: torch.Tensor | None = None,
    region: Region = "all",
) -> torch.Tensor:
    """Mean absolute error of each image over a region: ``(B,)``.

    For the set R of pixels in the region and C channels::

        L1 = 1 / (C * |R|) * sum over p in R, c of |prediction[c, p] - target[c, p]|

    * ``region="all"``: R is every pixel, so this is the mean over all C*H*W numbers (the L1
      of the partial-convolution paper); ``hole`` must be left out.
    * ``region="hole"``: R holds the pixels where ``hole == 1``, the part the method invented.
    * ``region="valid"``: R holds the pixels where ``hole == 0``. On a composite this is 0.

    With f the image's hole fraction the three are tied:
    ``L1_all = f * L1_hole + (1 - f) * L1_valid``. On a composite L1_valid is 0, so L1_all is
    the hole error diluted by the coverage; that is why results are reported per coverage band.

    ``hole`` is a binary mask ``(B, 1, H, W)``, 1 = hole. A sample whose region is empty (an
    all-valid mask for "hole", an all-hole mask for "valid") has no L1: that raises
    ``ValueError`` naming the samples rather than returning NaN.
    """
    prediction, target = _check_pair(prediction, target)
    error = (prediction - target).abs()  # (B, C, H, W)
    return _region_mean(error, hole, region, "l1")


def _region_mean(
    error: torch.Tensor, hole: torch.Tensor | None, region: Region, metric: str
) -> torch.Tensor:
    """Mean of a per-element error ``(B, C, H, W)`` over each image's region: ``(B,)``."""
    if region == "all":
        if hole is not None:
            raise ValueError(
                f"{metric} got a hole mask with region='all', which ignores it; pass "
                "region='hole' or region='valid' to measure one part, or leave hole out for "
                "the whole image."
            )
        return error.mean(dim=(1, 2, 3))  # (B,)
    if region not in ("hole", "valid"):
        raise ValueError(f"region must be 'all', 'hole' or 'valid', got {region!r}.")
    if hole is None:
        raise ValueError(
            f"{metric} with region={region!r} needs the hole mask: {metric}(..., hole=mask)."
        )
    check_mask(hole, "hole", like=error)
    if hole.device != error.device:
        raise ValueError(
            f"hole is on {hole.device} but the images are on {error.device}; "
            "move the mask with hole.to(prediction.device)."
        )
    inside = hole if region == "hole" else 1 - hole  # (B, 1, H, W), 1 = pixel of the region
    inside = inside.to(error.dtype)
    pixels = inside.sum(dim=(1, 2, 3))  # (B,) size of the region, |R|
    empty = torch.nonzero(pixels == 0).flatten().tolist()
    if empty:
        kind = "all-valid (no hole pixels)" if region == "hole" else "all-hole (no valid pixels)"
        raise ValueError(
            f"{metric}(region={region!r}) is undefined for samples {empty}: their mask is "
            f"{kind}, so the region is empty. Leave those samples out, or use region='all'."
        )
    channels = error.shape[1]
    # inside (B, 1, H, W) broadcasts over the channels: each region pixel counts C times.
    return (error * inside).sum(dim=(1, 2, 3)) / (channels * pixels)  # (B,)


def psnr(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    hole: torch.Tensor | None = None,
    region: Region = "all",
) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image in decibels: ``(B,)``.

    ::

        PSNR = 10 * log10(data_range**2 / MSE),   MSE = mean over C*|R| of (prediction - target)**2

    ``data_range`` is the distance between the darkest and brightest possible value: 1 for
    images in ``[0, 1]`` (it would be 255 for 8-bit pixels). +10 dB means a 10 times smaller
    MSE. ``region`` and ``hole`` choose the pixels R as in :func:`l1`: the whole image, the
    hole alone or the valid part. On a composite, MSE_all = coverage * MSE_hole, so the
    whole-image PSNR is the hole's PSNR plus ``-10 log10(coverage)`` dB: 10 dB more at 10%
    coverage than at 100%, for the same fill.

    Identical images have MSE 0 and PSNR ``+inf`` (as in scikit-image and torchmetrics); it
    is kept, not clamped: averaging code must decide what a perfect image counts for.
    ``course_lib.evaluate`` caps each pair at 60 dB before averaging and counts the capped pairs.
    """
    prediction, target = _check_pair(prediction, target)
    data_range = _check_positive("data_range", data_range)
    mse = _region_mean((prediction - target).pow(2), hole, region, "psnr")  # (B,)
    return 10 * torch.log10(data_range**2 / mse)  # x / 0 = inf and log10(inf) = inf


# ---------------------------------------------------------------------------------------------
# Structural similarity (SSIM)
# ---------------------------------------------------------------------------------------------


def gaussian_window(
    size: int = 11,
    sigma: float = 1.5,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 1-D Gaussian weights of the SSIM window: ``(size,)``, summing to 1.

    ``g[k] ∝ exp(-k**2 / (2 * sigma**2))`` for ``k = -r .. r`` with ``r = (size - 1) / 2``.
    The 2-D window is the outer product ``g gᵀ``, so blurring with it is a 1-D blur along the
    rows followed by a 1-D blur along the columns (2 * size instead of size**2 products).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(
            f"window_size must be an odd positive int (the window has a centre pixel), got "
            f"{size!r}; SSIM uses 11."
        )
    sigma = _check_positive("sigma", sigma)
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2  # (size,)
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def _local_mean(images: torch.Tensor, window: torch.Tensor, border: Border) -> torch.Tensor:
    """Gaussian-weighted average around every pixel, each channel on its own.

    ``images`` ``(N, C, H, W)`` becomes ``(N, C, H, W)`` with ``border="reflect"`` and
    ``(N, C, H - K + 1, W - K + 1)`` with ``border="crop"`` (K = window size).
    """
    channels = images.shape[1]
    radius = (window.numel() - 1) // 2
    if border == "reflect":
        # Mirror the image about its outermost pixels (... c b | a b c ...) so that the window
        # is full at every pixel and the map keeps the image's size.
        images = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    # groups=C: one filter per channel, so channels are never mixed.
    along_rows = window.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # (C, 1, 1, K)
    along_columns = window.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)  # (C, 1, K, 1)
    blurred = F.conv2d(images, along_rows, groups=channels)
    return F.conv2d(blurred, along_columns, groups=channels)


def _ssim_per_channel(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    window_size: int,
    sigma: float,
    k1: float,
    k2: float,
    border: Border,
) -> torch.Tensor:
    """The SSIM map of every channel: ``(B, C, H', W')``. Inputs are already checked."""
    height, width = prediction.shape[-2:]
    if min(height, width) < window_size:
        raise ValueError(
            f"SSIM needs images at least as large as its {window_size}x{window_size} window, "
            f"got {height}x{width}; use larger images or a smaller window_size."
        )
    if border not in ("reflect", "crop"):
        raise ValueError(f"border must be 'reflect' or 'crop', got {border!r}.")
    c1 = (_check_positive("k1", k1) * data_range) ** 2
    c2 = (_check_positive("k2", k2) * data_range) ** 2
    window = gaussian_window(window_size, sigma, prediction.dtype, prediction.device)
    x, y = prediction, target  # (B, C, H, W)
    batch = x.shape[0]
    # The five local averages E[x], E[y], E[x²], E[y²], E[xy] in one convolution call.
    moments = _local_mean(torch.cat([x, y, x * x, y * y, x * y]), window, border)  # (5B, C, H', W')
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = moments.split(batch)  # each (B, C, H', W')
    # Var = E[x²] - E[x]². Rounding can make a flat window's variance a tiny negative number;
    # it is left unclamped (c2 keeps the denominator positive) so that for ssim(x, x) numerator
    # and denominator are the same numbers and the result is 1.
    var_x = mean_xx - mu_x * mu_x
    var_y = mean_yy - mu_y * mu_y
    cov_xy = mean_xy - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    return luminance * contrast_structure


def ssim_map(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    border: Border = "reflect",
) -> torch.Tensor:
    """Local SSIM around every pixel, averaged over the channels: ``(B, 1, H', W')``.

    Around pixel p, with Gaussian-weighted means μ, variances σ² and covariance σ_xy over the
    window, and c1 = (k1 * data_range)², c2 = (k2 * data_range)²::

        SSIM(p) = (2 μx μy + c1) / (μx² + μy² + c1)  *  (2 σxy + c2) / (σx² + σy² + c2)

    The first factor compares brightness, the second contrast and structure (it is a
    correlation, kept finite by c2 in flat areas). 1 means identical windows.

    ``border`` decides what happens where the window sticks out of the image:

    * ``"reflect"`` (default): the image is mirrored about its edge pixels, so every pixel has
      a value and ``H', W' = H, W``. This is torchmetrics' convention. The course uses it
      because inpainting holes often touch the border (the partial-convolution paper reports
      them separately), and a score blind to a border strip would not see them.
    * ``"crop"``: only pixels whose window lies inside the image,
      ``H', W' = H - window_size + 1, W - window_size + 1``. This is scikit-image's convention
      (``structural_similarity`` drops a strip of ``(window_size - 1) / 2`` pixels).

    Away from the border strip both conventions give the same numbers, but the strip is 29 %
    of a 64x64 image: on noisy, blurred and inpainted 64x64 photo patches the two image
    averages differ by up to 0.027.
    """
    prediction, target = _check_pair(prediction, target)
    data_range = _check_positive("data_range", data_range)
    per_channel = _ssim_per_channel(
        prediction, target, data_range, window_size, sigma, k1, k2, border
    )  # (B, C, H', W')
    return per_channel.mean(dim=1, keepdim=True)  # (B, 1, H', W')


def ssim(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    border: Border = "reflect",
) -> torch.Tensor:
    """Structural similarity of each image: the mean of :func:`ssim_map`, ``(B,)``.

    The defaults are those of Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5,
    k1 = 0.01, k2 = 0.03, population (not sample) statistics. For colour images each channel is
    scored on its own and the channels are averaged. SSIM is at most 1 (identical images) and
    symmetric in its two arguments.

    With ``border="reflect"`` this equals torchmetrics'
    ``StructuralSimilarityIndexMeasure(gaussian_kernel=True, sigma=1.5, kernel_size=11,
    data_range=1.0, reduction="none")``; with ``border="crop"`` it equals scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)`` (see :func:`ssim_map`).
    """
    return ssim_map(prediction, target, data_range, window_size, sigma, k1, k2, border).mean(
        dim=(1, 2, 3)
    )  # (B,)


# ---------------------------------------------------------------------------------------------
# Weights of the learned metrics (LPIPS, FID)
# ---------------------------------------------------------------------------------------------


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights a metric needs are not on this machine.

    ``missing`` holds the paths of the absent files; the message says how to get them.
    """

    def __init__(self, message: str, missing: tuple[Path, ...]) -> None:
        super().__init__(message)
        self.missing = missing


def hub_checkpoints() -> Path:
    """The folder where torch.hub (used by torchvision and torch-fidelity) caches weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_weights_error(
    metric: str, missing: list[tuple[Path, str]], note: str = ""
) -> MissingWeightsError:
    """The error for absent weight files: one line per file with how to get it."""
    lines = "\n".join(f"  - {path} is missing: {how}" for path, how in missing)
    return MissingWeightsError(
        f"{metric} needs pretrained weights that are not on this machine:\n{lines}\n{note}"
        f"torch.hub caches downloads in {hub_checkpoints()} (torch.hub.get_dir() + "
        "'/checkpoints'; set the TORCH_HOME environment variable to move it). The course never "
        "substitutes an untrained network: its scores would look plausible and mean nothing.",
        tuple(path for path, _ in missing),
    )


def torchvision_weights_how(architecture: str, weights: str, url: str, default: Path) -> str:
    """How to get torchvision's ImageNet weights of ``architecture`` onto this machine."""
    return (
        f"the ImageNet weights of {architecture}. With internet, run once "
        f'`python -c "import torchvision; torchvision.models.{architecture}'
        f"(weights='{weights}')\"` (it downloads {url} to {default}); offline, copy "
        f"{default.name} there or pass weights_path='<the file>'"
    )


# ---------------------------------------------------------------------------------------------
# LPIPS: distance between deep features
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LpipsBackbone:
    """An ImageNet classifier whose features LPIPS compares."""

    architecture: str  # torchvision.models function, e.g. "alexnet"
    weights: str  # torchvision weights enum, e.g. "AlexNet_Weights"
    taps: tuple[int, ...]  # indices into model.features whose outputs (after a ReLU) are compared

    @property
    def url(self) -> str:
        """Where torchvision downloads the ImageNet weights from."""
        return getattr(torchvision.models, self.weights).DEFAULT.url

    @property
    def file_name(self) -> str:
        """The weight file's name in the torch.hub cache, e.g. ``alexnet-owt-7be5be79.pth``."""
        return self.url.rsplit("/", 1)[-1]


LPIPS_BACKBONES: dict[str, LpipsBackbone] = {
    "alex": LpipsBackbone("alexnet", "AlexNet_Weights", taps=(1, 4, 7, 9, 11)),
    "vgg": LpipsBackbone("vgg16", "VGG16_Weights", taps=(3, 8, 15, 22, 29)),
}
"""LPIPS's two standard backbones: the ReLU after each of AlexNet's 5 convolutions, and the
last ReLU of each of VGG-16's 5 blocks (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3)."""

# ImageNet statistics of the backbones' training images (RGB, for pixels in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _lpips_linear_file(net: str) -> Path:
    """LPIPS's trained per-channel weights, shipped inside the torchmetrics package."""
    spec = importlib.util.find_spec("torchmetrics")
    package = Path(spec.origin).parent if spec is not None and spec.origin else Path("torchmetrics")
    return package / "functional" / "image" / "lpips_models" / f"{net}.pth"


def _lpips_files(net: str, weights_path: str | Path | None) -> tuple[Path, Path]:
    """The backbone and linear-layer files of LPIPS, or :class:`MissingWeightsError`."""
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONES)}, got {net!r}.")
    backbone = LPIPS_BACKBONES[net]
    default = hub_checkpoints() / backbone.file_name
    backbone_file = Path(weights_path) if weights_path is not None else default
    linear_file = _lpips_linear_file(net)
    missing = []
    if not backbone_file.is_file():
        missing.append(
            (
                backbone_file,
                torchvision_weights_how(backbone.architecture, "DEFAULT", backbone.url, default),
            )
        )
    if not linear_file.is_file():
        missing.append(
            (
                linear_file,
                "LPIPS's linear layers, shipped with torchmetrics; reinstall it with "
                "`pip install --force-reinstall torchmetrics`",
            )
        )
    if missing:
        raise missing_weights_error(f"LPIPS (net={net!r})", missing)
    return backbone_file, linear_file


class LpipsNetwork(nn.Module):
    """LPIPS: a frozen ImageNet feature extractor plus one learned weight per feature channel.

    For each tapped layer l with features f_l (unit length along the channels at every
    position) and learned non-negative channel weights w_l::

        LPIPS(x, y) = sum over l of mean over positions of  sum_c w_l[c] * (f_l(x)[c] - f_l(y)[c])**2

    0 means identical features; larger is more different. Trained so that it agrees with
    people's judgement of which of two distortions looks closer to the original.
    """

    def __init__(
        self, features: nn.Sequential, taps: tuple[int, ...], linear: list[torch.Tensor]
    ) -> None:
        super().__init__()
        self.features = features.requires_grad_(False)
        self.taps = taps
        self.linear = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in linear)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS of each pair of images in ``[0, 1]``: ``(B,)``."""
        batch = prediction.shape[0]
        # Normalise as the backbone's ImageNet training images were. (LPIPS's own code maps
        # [0, 1] to [-1, 1] and then shifts and scales; that is the same affine map.)
        features = (torch.cat([prediction, target]) - self.mean) / self.std  # (2B, 3, H, W)
        distance = prediction.new_zeros(batch)  # (B,)
        layer = 0
        for index, module in enumerate(self.features):
            features = module(features)
            if index not in self.taps:
                continue
            # Unit length along the channels, so that each layer and position weighs alike.
            # The 1e-8 keeps all-zero feature vectors (every ReLU off) at 0 instead of NaN.
            unit = features / torch.sqrt(features.pow(2).sum(dim=1, keepdim=True) + 1e-8)
            unit_x, unit_y = unit.split(batch)  # each (B, C_l, h, w)
            weighted = F.conv2d((unit_x - unit_y) ** 2, self.linear[layer])  # (B, 1, h, w)
            distance = distance + weighted.mean(dim=(1, 2, 3))
            layer += 1
        return distance


@lru_cache(maxsize=4)
def _lpips_network(net: str, backbone_file: str, linear_file: str) -> LpipsNetwork:
    """Build LPIPS from its two weight files (cached: loading takes a second or two)."""
    backbone = LPIPS_BACKBONES[net]
    # Built on the "meta" device: layers with shapes but no numbers. Every number must then
    # come from the file (strict loading, assign=True); there is no random layer to fall back on.
    with torch.device("meta"):
        model = getattr(torchvision.models, backbone.architecture)(weights=None)
    features = model.features[: backbone.taps[-1] + 1]  # nothing after the last tap is needed
    state = torch.load(backbone_file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{backbone_file} holds no state dict; expected torchvision's weights.")
    # The file holds the whole classifier; LPIPS uses the convolutional part only.
    feature_state = {
        name: state[f"features.{name}"]
        for name in features.state_dict()
        if f"features.{name}" in state
    }
    try:
        features.load_state_dict(feature_state, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(
            f"{backbone_file} is not torchvision's {backbone.architecture} ImageNet checkpoint "
            f"({error}); download {backbone.url} again."
        ) from error
    linear_state = torch.load(linear_file, map_location="cpu", weights_only=True)
    linear = []
    for layer, index in enumerate(backbone.taps):
        weight = linear_state.get(f"lin{layer}.model.1.weight")
        channels = features[index - 1].out_channels  # the convolution before this ReLU
        if weight is None or tuple(weight.shape) != (1, channels, 1, 1):
            raise ValueError(
                f"{linear_file} does not hold LPIPS weights for net={net!r} (layer {layer}); "
                "reinstall torchmetrics."
            )
        linear.append(weight)
    return LpipsNetwork(features, backbone.taps, linear).eval()


def lpips(
    prediction: torch.Tensor,
    target: torch.Tensor,
    net: str = "alex",
    weights_path: str | Path | None = None,
) -> torch.Tensor:
    """Learned perceptual image patch similarity (Zhang et al., 2018) of each image: ``(B,)``.

    Lower is better, 0 for identical images. See :class:`LpipsNetwork` for the formula.

    * ``net``: ``"alex"`` (AlexNet, LPIPS's recommended metric) or ``"vgg"`` (VGG-16).
    * ``weights_path``: the backbone's ImageNet weights; by default torchvision's file in the
      torch.hub cache (``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth``). LPIPS's own
      channel weights ship with torchmetrics.

    Numbers equal torchmetrics' ``LearnedPerceptualImagePatchSimilarity(net_type=net,
    normalize=True, reduction="none")``; unlike it, this function never downloads anything.
    Raises :class:`MissingWeightsError` when a file is missing. RGB images only.
    """
    prediction, target = _check_pair(prediction, target)
    if prediction.shape[1] != 3:
        raise ValueError(
            f"LPIPS compares RGB images (B, 3, H, W), got {tuple(prediction.shape)}; repeat a "
            "grey channel with image.expand(-1, 3, -1, -1)."
        )
    backbone_file, linear_file = _lpips_files(net, weights_path)
    network = _lpips_network(net, str(backbone_file), str(linear_file))
    network = network.to(device=prediction.device, dtype=prediction.dtype)
    return network(prediction, target)


# ---------------------------------------------------------------------------------------------
# FID: distance between two sets of images
# ---------------------------------------------------------------------------------------------

FID_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
"""InceptionV3 weights ported from TensorFlow, used by every published FID (via torch-fidelity)."""


def _fid_file(weights_path: str | Path | None) -> Path:
    """The Inception weight file of FID, checked; also checks that torch-fidelity is installed."""
    default = hub_checkpoints() / FID_WEIGHTS_URL.rsplit("/", 1)[-1]
    weights_file = Path(weights_path) if weights_path is not None else default
    package_missing = (
        "FID also needs the torch-fidelity package (torchmetrics runs its InceptionV3), which is "
        "not installed: `pip install torch-fidelity`.\n"
    )
    installed = importlib.util.find_spec("torch_fidelity") is not None
    if not weights_file.is_file():
        raise missing_weights_error(
            "FID",
            [
                (
                    weights_file,
                    "torch-fidelity's InceptionV3. With internet, run once `python -c \"import "
                    f"torch; torch.hub.load_state_dict_from_url('{FID_WEIGHTS_URL}')\"` (it "
                    f"downloads to {default}); offline, copy the file there or pass "
                    "weights_path='<the file>'",
                )
            ],
            note="" if installed else package_missing,
        )
    if not installed:
        raise ModuleNotFoundError(package_missing.strip(), name="torch_fidelity")
    return weights_file


def fid(
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    weights_path: str | Path | None = None,
) -> torch.Tensor:
    """Fréchet Inception distance between two sets of RGB images: a scalar tensor.

    Each set is summarised by the mean μ and covariance Σ of its InceptionV3 pool features
    (2048 numbers per image), and FID is the Fréchet distance of the two Gaussians::

        FID = |μ_r - μ_f|² + trace(Σ_r + Σ_f - 2 (Σ_r Σ_f)^(1/2))

    Lower is better. It scores a whole set (are the fakes distributed like real images?), not
    one image, and is biased upwards for small sets: compare FIDs only between sets of the same
    size (published numbers use thousands of images). The sets may differ in size and image
    size (images are resized to 299x299); each needs at least 2 images.

    Runs torchmetrics' ``FrechetInceptionDistance(feature=2048, normalize=True)`` with the
    weights file given explicitly, so it never downloads. ``weights_path`` defaults to
    ``weights-inception-2015-12-05-6726825d.pth`` in the torch.hub cache. Raises
    :class:`MissingWeightsError` without that file and ``ModuleNotFoundError`` without the
    torch-fidelity package.
    """
    check_image(real_images, "real_images")
    check_image(fake_images, "fake_images")
    for name, images in (("real_images", real_images), ("fake_images", fake_images)):
        if images.shape[0] < 2:
            raise ValueError(
                f"FID needs at least 2 images per set to estimate a covariance, got "
                f"{images.shape[0]} in {name}; use many more for a meaningful number."
            )
    if real_images.device != fake_images.device:
        raise ValueError(
            f"real_images are on {real_images.device} but fake_images on {fake_images.device}; "
            "move both to one device."
        )
    weights_file = _fid_file(weights_path)
    # Imported here: only FID needs it, and the import pulls in torch-fidelity.
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(
        feature=2048, normalize=True, feature_extractor_weights_path=str(weights_file)
    ).to(real_images.device)
    metric.update(real_images.float(), real=True)
    metric.update(fake_images.float(), real=False)
    return metric.compute()


# ---------------------------------------------------------------------------------------------
# What can run here?
# ---------------------------------------------------------------------------------------------


def available() -> dict[str, str]:
    """Whether LPIPS (AlexNet) and FID can run on this machine, and why not.

    ``{"lpips": ..., "fid": ...}``: each value starts with ``"available"`` and lists the weight
    files, or starts with ``"unavailable:"`` followed by what is missing and how to get it.
    Only files are checked; nothing is loaded or downloaded.
    """
    report = {}
    checks = {"lpips": lambda: _lpips_files("alex", None), "fid": lambda: (_fid_file(None),)}
    for name, check in checks.items():
        try:
            files = check()
        except (MissingWeightsError, ModuleNotFoundError) as error:
            report[name] = f"unavailable: {error}"
        else:
            report[name] = f"available (weights: {', '.join(str(path) for path in files)})"
    return report
