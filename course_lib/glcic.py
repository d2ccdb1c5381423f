"""GLCIC's completion network and its two discriminators (lesson 08).

*Globally and Locally Consistent Image Completion* (Iizuka, Simo-Serra and Ishikawa,
SIGGRAPH 2017) made the inpainting network fully convolutional, so it works at any size,
and widened its receptive field with **dilated convolutions** instead of more layers: a 3x3
convolution with dilation ``d`` looks at pixels ``d`` apart, so four of them with dilations
2, 4, 8 and 16 at a quarter of the resolution widen the field by 2 * 4 * (2 + 4 + 8 + 16) = 240
pixels, four plain ones by 32, at the same cost. Lesson 05's Fourier unit is the other answer to the
same problem.

It judges its results twice: a **global** discriminator sees the whole image (is the scene
coherent?), a **local** one a crop around the hole (is the filled region realistic?); their
features are concatenated into one real/fake logit. :func:`hole_crops` cuts the local one's
input, and ``local=False`` drops it: the paper's ablation of the local discriminator.

The layer plan is the paper's (Table 1: 17 convolution layers, widths 64 to 256); ``width``
scales every layer (``"small"``: width 16, for the course's 64x64 images on a CPU).
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.networks import InpaintingNetwork
from course_lib.validate import check_image, check_mask

__all__ = [
    "CONFIGS",
    "CompletionNetwork",
    "GlobalLocalDiscriminator",
    "hole_crops",
    "receptive_field",
]

CONFIGS: dict[str, dict[str, int]] = {"small": {"width": 16}, "paper": {"width": 64}}

# (kind, kernel, stride, dilation, output width in units of `width`): the paper's Table 1.
PLAN = [
    ("conv", 5, 1, 1, 1),
    ("conv", 3, 2, 1, 2),
    ("conv", 3, 1, 1, 2),
    ("conv", 3, 2, 1, 4),
    ("conv", 3, 1, 1, 4),
    ("conv", 3, 1, 1, 4),
    ("conv", 3, 1, 2, 4),
    ("conv", 3, 1, 4, 4),
    ("conv", 3, 1, 8, 4),
    ("conv", 3, 1, 16, 4),
    ("conv", 3, 1, 1, 4),
    ("conv", 3, 1, 1, 4),
    ("deconv", 4, 2, 1, 2),
    ("conv", 3, 1, 1, 2),
    ("deconv", 4, 2, 1, 1),
    ("conv", 3, 1, 1, 0.5),
]


def receptive_field(plan: list[tuple] = PLAN) -> int:
    """Side of the input window one output pixel of the plan's layers depends on (the output
    layer's 3x3 convolution included), from the kernel sizes, dilations and strides.

    A transposed convolution makes the exact window depend on where the output pixel sits on
    the stride grid; this is the average over those positions (the extremes differ by a few
    pixels)."""
    field, jump = 1, 1.0  # jump: input pixels between neighbouring positions of a layer's input
    for kind, kernel, stride, dilation, _ in [*plan, ("conv", 3, 1, 1, 0)]:
        if kind == "deconv":  # each output position sees ceil(kernel / stride) input positions
            field += (-(-kernel // stride) - 1) * jump
            jump /= stride
        else:
            field += (kernel - 1) * dilation * jump
            jump *= stride
    return int(field)


def _layer(kind: str, c_in: int, c_out: int, kernel: int, stride: int, dilation: int) -> nn.Module:
    if kind == "deconv":  # x2 upsampling: 4x4 transposed convolution, stride 2, padding 1
        conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding=1)
    else:
        conv = nn.Conv2d(
            c_in, c_out, kernel, stride, padding=dilation * (kernel - 1) // 2, dilation=dilation
        )
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class CompletionNetwork(InpaintingNetwork):
    """Image with zeroed holes + hole mask ``(B, 4, H, W)`` -> prediction ``(B, 3, H, W)`` in
    [0, 1]; ``H`` and ``W`` must be multiples of 4 (two stride-2 stages).

    ``plan``: the layers, as :data:`PLAN` writes them (lesson 08 builds the plan without its
    dilations to compare the receptive fields); the strides must stay those of ``PLAN``."""

    CONFIGS = CONFIGS

    def __init__(self, width: int = 64, plan: list[tuple] = PLAN) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 2 or width % 2:
            raise ValueError(f"CompletionNetwork: width must be an even int >= 2, got {width!r}.")
        if [layer[2] for layer in plan] != [layer[2] for layer in PLAN]:
            raise ValueError(
                "CompletionNetwork: plan must keep PLAN's strides (its sides must stay multiples "
                "of 4); change kernels, dilations or widths only."
            )
        layers, channels = [], 4
        for kind, kernel, stride, dilation, scale in plan:
            out = int(width * scale)
            layers.append(_layer(kind, channels, out, kernel, stride, dilation))
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        check_image(image)
        check_mask(hole, like=image)
        if image.shape[-2] % 4 or image.shape[-1] % 4:
            raise ValueError(
                f"CompletionNetwork needs sides that are multiples of 4, got {tuple(image.shape[-2:])}; "
                "pad the image (and mark the padding as hole) first."
            )
        x = torch.cat([image * (1 - hole), hole], dim=1)  # (B, 4, H, W): holes zeroed
        return torch.sigmoid(self.head(self.body(x)))


def _judge(channels: list[int]) -> nn.Sequential:
    """5x5 stride-2 convolutions with batch norm and ReLU, then flattened."""
    layers = []
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        layers += [nn.Conv2d(c_in, c_out, 5, 2, 2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Flatten())


def hole_crops(images: torch.Tensor, hole: torch.Tensor, size: int) -> torch.Tensor:
    """The local discriminator's input: for each image ``(B, 3, H, W)`` the ``size`` x ``size``
    crop centred on its hole's bounding box (``hole`` ``(B, 1, H, W)``), moved inside the image
    where the centre is too close to a border. An image without hole pixels gives its centre."""
    check_image(images, name="images")
    check_mask(hole, like=images)
    height, width = images.shape[-2:]
    if not isinstance(size, int) or not 0 < size <= min(height, width):
        raise ValueError(
            f"size must be an int in [1, {min(height, width)}] (the images' shorter side), "
            f"got {size!r}."
        )
    crops = []
    for image, sample_hole in zip(images, hole[:, 0], strict=True):
        rows, columns = sample_hole.nonzero(as_tuple=True)
        if len(rows):
            centre = ((rows.min() + rows.max() + 1) // 2, (columns.min() + columns.max() + 1) // 2)
        else:
            centre = (height // 2, width // 2)
        top = min(max(int(centre[0]) - size // 2, 0), height - size)
        left = min(max(int(centre[1]) - size // 2, 0), width - size)
        crops.append(image[:, top : top + size, left : left + size])
    return torch.stack(crops)  # (B, 3, size, size)


class GlobalLocalDiscriminator(nn.Module):
    """GLCIC's two discriminators, joined: ``(image (B, 3, S, S), crop (B, 3, s, s))`` ->
    one logit ``(B, 1)``. The global one sees the whole image (``image_size``), the local one a
    crop around the hole (``crop_size``, :func:`hole_crops`); each ends in a 1024-wide layer
    (scaled by ``width`` / 64), concatenated and mapped to the logit.

    ``local=False`` keeps the global one alone (the paper's ablation): ``forward(image)``, and
    the logit comes from its features only."""

    def __init__(
        self, image_size: int = 256, crop_size: int = 128, width: int = 64, local: bool = True
    ) -> None:
        super().__init__()
        if image_size % 64 or crop_size % 32:
            raise ValueError(
                f"image_size must be a multiple of 64 and crop_size of 32 (six and five stride-2 "
                f"layers), got {image_size} and {crop_size}."
            )
        widths = [3, width, 2 * width, 4 * width, 8 * width, 8 * width]
        features = 16 * width  # 1024 for width 64
        # The paper: 6 stride-2 layers globally (256 -> 4), 5 locally (128 -> 4).
        self.global_branch = _judge(widths + [8 * width])
        self.global_fc = nn.Linear(8 * width * (image_size // 64) ** 2, features)
        self.local = bool(local)
        if self.local:
            self.local_branch = _judge(widths)
            self.local_fc = nn.Linear(8 * width * (crop_size // 32) ** 2, features)
        self.joined = nn.Linear((1 + self.local) * features, 1)
        self.sizes = (image_size, crop_size)

    def extra_repr(self) -> str:
        return f"image_size={self.sizes[0]}, crop_size={self.sizes[1]}, local={self.local}"

    def forward(self, image: torch.Tensor, crop: torch.Tensor | None = None) -> torch.Tensor:
        if (crop is None) == self.local:
            needed = "needs the hole's crop" if self.local else "has no local branch: pass no crop"
            raise ValueError(f"this discriminator (local={self.local}) {needed}.")
        if image.shape[-1] != self.sizes[0] or (
            crop is not None and crop.shape[-1] != self.sizes[1]
        ):
            got = [tuple(t.shape[-2:]) for t in (image, crop) if t is not None]
            raise ValueError(
                f"built for images of {self.sizes[0]} and crops of {self.sizes[1]} pixels, got "
                f"{' and '.join(map(str, got))}."
            )
        features = [self.global_fc(self.global_branch(image))]  # (B, 16 width)
        if crop is not None:
            features.append(self.local_fc(self.local_branch(crop)))
        return self.joined(torch.cat(features, dim=1))  # (B, 1)
