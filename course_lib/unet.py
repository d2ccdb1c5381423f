"""U-Nets for inpainting: the partial-convolution U-Net and its plain twin (lesson 03).

:class:`PConvUNet` is the network of Liu et al. (ECCV 2018): an encoder of stride-2 partial
convolutions (ReLU, batch norm on every layer but the first), a decoder that upsamples
features *and masks* by 2 (nearest), concatenates them with the encoder's skip connection and
applies a 3x3 partial convolution (batch norm, LeakyReLU 0.2); the last decoder layer also
sees the input image and its mask and outputs the image, with no batch norm or activation.

:class:`ConvUNet` is the same network with plain convolutions, taking the mask the way LaMa
(and many networks before partial convolutions) do: as a fourth input channel next to the
image with its holes zeroed. Same kernels, strides, widths, batch norms and activations, and
within 0.2 % of the parameters (the hole channel's weights), so that the lesson compares the
layers and nothing else.

:class:`PlainConvUNet` is the baseline the partial-convolution paper beat: the same plain
network without the hole channel, its holes filled with grey, so it must tell a hole from a
grey region by itself.

Both take the course's convention, ``forward(image, hole)`` with **1 = hole**, hide the hole
pixels from the network (they are zeroed before anything else), pad the image up to a
multiple of ``2**depth`` (the padding counts as hole) and crop back. They return the raw
prediction for every pixel; callers composite ``hole * prediction + (1 - hole) * image``, or
call :meth:`inpaint`, which does that and fits the evaluation harness's ``fill(image, hole)``.

Named configurations (:data:`CONFIGS`, :meth:`from_config`): ``"paper512"`` (depth 8, the
paper's network for 512x512 images), ``"paper256"`` (depth 7, for 256x256) and ``"small"``
(depth 5, for the course's 64x64 images on a CPU).
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import masks
from course_lib.networks import InpaintingNetwork
from course_lib.partial_conv import PartialConv2d
from course_lib.validate import check_image, check_mask

__all__ = ["CONFIGS", "ConvUNet", "PConvUNet", "PlainConvUNet"]

CONFIGS: dict[str, dict[str, object]] = {
    "paper512": {
        "depth": 8,
        "kernels": (7, 5, 5, 3, 3, 3, 3, 3),
        "channels": (64, 128, 256, 512, 512, 512, 512, 512),
    },
    "paper256": {
        "depth": 7,
        "kernels": (7, 5, 5, 3, 3, 3, 3),
        "channels": (64, 128, 256, 512, 512, 512, 512),
    },
    "small": {
        "depth": 5,
        "kernels": (7, 5, 5, 3, 3),
        "channels": (32, 64, 96, 128, 128),
    },
}
"""Encoder depth, kernel sizes and channel widths of the named networks."""


class _UNetBase(InpaintingNetwork, abc.ABC):
    """What both U-Nets share: padding and cropping, and the fine-tuning mode with frozen
    encoder batch norms (configurations and compositing: :class:`InpaintingNetwork`)."""

    CONFIGS = CONFIGS

    def __init__(
        self,
        depth: int = 8,
        channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512),
        kernels: tuple[int, ...] = (7, 5, 5, 3, 3, 3, 3, 3),
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"{name}: depth must be an int of at least 1, got {depth!r}.")
        if len(channels) != depth or len(kernels) != depth:
            raise ValueError(
                f"{name}: give one channel width and one kernel size per encoder layer, i.e. "
                f"{depth} of each for depth={depth}; got {len(channels)} channels "
                f"{tuple(channels)} and {len(kernels)} kernels {tuple(kernels)}."
            )
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(
                f"{name}: kernel sizes must be odd (so that padding k // 2 halves the size "
                f"exactly), got {tuple(kernels)}."
            )
        if min(channels) < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"{name}: channel counts must be positive, got channels={tuple(channels)}, "
                f"in_channels={in_channels}, out_channels={out_channels}."
            )
        self.depth = depth
        self.channels = tuple(channels)
        self.kernels = tuple(kernels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoder_bn_frozen = False

    # -- named configurations ------------------------------------------------------------------

    @classmethod
    def paper512(cls, **overrides: object) -> _UNetBase:
        """The paper's network for 512x512 images (depth 8)."""
        return cls.from_config("paper512", **overrides)

    @classmethod
    def paper256(cls, **overrides: object) -> _UNetBase:
        """The paper's network for 256x256 images (depth 7)."""
        return cls.from_config("paper256", **overrides)

    @classmethod
    def small(cls, **overrides: object) -> _UNetBase:
        """A depth-5 network for the course's 64x64 images (quick profile, CPU)."""
        return cls.from_config("small", **overrides)

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Predict every pixel of ``image`` ``(B, C, H, W)`` from its known pixels.

        ``hole`` is ``(B, 1, H, W)``, 1 = hole. Any ``H, W >= 1`` work: the input is padded
        (right and bottom) to a multiple of ``2**depth``, the padding is marked as hole, and
        the output is cropped back. Returns the raw prediction ``(B, out_channels, H, W)``,
        not the composite (see :meth:`inpaint`).
        """
        check_image(image, channels=self.in_channels)
        check_mask(hole, like=image)
        self._check_trainable_size(image)
        height, width = image.shape[-2:]
        multiple = 2**self.depth
        padding = (0, -width % multiple, 0, -height % multiple)  # left, right, top, bottom
        # Zero the hole pixels first: whatever values they hold must not reach the network.
        image = F.pad(image * (1 - hole), padding)  # (B, C, H + pad, W + pad)
        # The padding is not part of the image: mark it as hole, so that partial convolutions
        # ignore it and the plain network sees it flagged like any missing pixel.
        hole = F.pad(hole, padding, value=1.0)  # (B, 1, H + pad, W + pad)
        prediction = self._predict(image, hole)  # (B, out_channels, H + pad, W + pad)
        return prediction[..., :height, :width]

    def _check_trainable_size(self, image: torch.Tensor) -> None:
        """Refuse a batch too small for the deepest batch norm in training mode.

        After ``depth`` halvings the deepest encoder layer sees ``ceil(H / 2**depth) x
        ceil(W / 2**depth)`` positions per image; batch norm in training mode needs more than
        one value per channel to take statistics, so one image of at most ``2**depth`` pixels
        a side cannot be trained on. Checked here, at the network's entry, so that the error
        names the image and not a layer deep inside.
        """
        if not any(norm.training for norm in self.encoder_norms()):
            return  # eval mode, frozen encoder norms or depth 1: running statistics are used
        multiple = 2**self.depth
        batch, height, width = image.shape[0], image.shape[-2], image.shape[-1]
        if batch * math.ceil(height / multiple) * math.ceil(width / multiple) > 1:
            return
        raise ValueError(
            f"image of shape {tuple(image.shape)} is too small for {type(self).__name__} in "
            f"training mode: after {self.depth} halvings its deepest batch norm sees one value "
            "per channel, and batch statistics need more. Train on images larger than "
            f"{multiple}x{multiple} (at least {multiple + 1} pixels on one side), on a batch of "
            "2 or more images, or call model.eval() to inpaint a single small image."
        )

    @abc.abstractmethod
    def _predict(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The network proper, on a padded image with zeroed holes and its hole mask."""

    # -- fine-tuning with frozen encoder batch norms -----------------------------------------------

    def encoder_norms(self) -> list[nn.BatchNorm2d]:
        """The batch-norm layers of the encoder (every encoder layer but the first)."""
        return [module for module in self.encoder.modules() if isinstance(module, nn.BatchNorm2d)]

    def freeze_encoder_bn(self, frozen: bool = True) -> _UNetBase:
        """Switch the fine-tuning mode on (or off with ``frozen=False``); return the network.

        The paper trains with Adam at 2e-4, then fine-tunes at 5e-5 with the encoder's batch
        norms frozen: in the encoder, batch statistics are taken over hole pixels too (zeros
        for the first layers), which skews them. Frozen means the running mean and variance
        stop updating and are used for normalising, in training as in evaluation: the layers
        are kept in eval mode, and :meth:`train` keeps them there. Their affine weight and
        bias keep training: the statistics are what the holes skew, and eval mode is all the
        paper's reference code changes too. The decoder's batch norms are not affected.
        """
        self.encoder_bn_frozen = frozen
        return self.train(self.training)

    def train(self, mode: bool = True) -> _UNetBase:
        """``nn.Module.train``, except that frozen encoder batch norms stay in eval mode."""
        super().train(mode)
        if self.encoder_bn_frozen:
            for norm in self.encoder_norms():
                norm.eval()
        return self


class _PartialBlock(nn.Module):
    """Partial convolution, then batch norm and activation (each optional)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        norm: bool,
        activation: nn.Module | None,
    ) -> None:
        super().__init__()
        # No bias before batch norm: its shift would be removed by the norm's mean anyway.
        self.conv = PartialConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=not norm,
            multi_channel=True,
            check_inputs=False,  # the network checks its hole mask once, at its entry
        )
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, valid = self.conv(x, valid)
        return self.activation(self.norm(x)), valid


class PConvUNet(_UNetBase):
    """The partial-convolution U-Net (Liu et al., 2018); see the module docstring.

    Every layer is a :class:`PartialConv2d` with ``multi_channel=True``: a mask travels with
    every feature map, one channel per feature channel, so the decoder concatenates masks
    exactly as it concatenates features. That matters there: the upsampled deep features have
    smaller holes than the skip connection, and one shared mask could not say both. In the
    encoder all channels of a mask are equal, which gives exactly what single-channel masks
    would (the masks are broadcast views there, so they cost no memory).

    Args:
        depth: number of stride-2 encoder layers; inputs are padded to a multiple of
            ``2**depth``.
        channels: width of each encoder layer (the decoder mirrors them).
        kernels: kernel size of each encoder layer (the decoder uses 3x3).
        in_channels, out_channels: channels of the image and of the prediction.
    """

    def __init__(
        self,
        depth: int = 8,
        channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512),
        kernels: tuple[int, ...] = (7, 5, 5, 3, 3, 3, 3, 3),
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__(depth, channels, kernels, in_channels, out_channels)
        widths = (in_channels, *self.channels)  # widths[i]: channels entering encoder layer i
        self.encoder = nn.ModuleList(
            _PartialBlock(widths[i], widths[i + 1], kernels[i], 2, i > 0, nn.ReLU())
            for i in range(depth)
        )
        # Decoder, deepest first: level i takes level i + 1's output (width widths[i + 1]),
        # upsampled, next to the skip from encoder layer i - 1 (width widths[i]), and gives
        # widths[i]; the last level's skip is the input image, and it gives the prediction.
        self.decoder = nn.ModuleList(
            _PartialBlock(
                widths[i + 1] + widths[i],
                widths[i] if i > 0 else out_channels,
                3,
                1,
                i > 0,
                nn.LeakyReLU(0.2) if i > 0 else None,
            )
            for i in reversed(range(depth))
        )

    def _predict(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        valid = masks.to_valid(hole).expand(-1, self.in_channels, -1, -1)  # (B, C_in, H, W)
        x = image
        skips = []
        for block in self.encoder:
            skips.append((x, valid))
            x, valid = block(x, valid)  # (B, C, H/2, W/2) each
        for block in self.decoder:
            skip, skip_valid = skips.pop()
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)
            # A layer's updated mask is the same for all its output channels (PartialConv2d
            # returns one channel broadcast to all), so upsample one and broadcast it again.
            valid = F.interpolate(valid[:, :1], scale_factor=2, mode="nearest")  # (B, 1, 2H, 2W)
            valid = valid.expand(-1, x.shape[1], -1, -1)  # (B, C, 2H, 2W)
            x, valid = block(torch.cat([x, skip], dim=1), torch.cat([valid, skip_valid], dim=1))
        return x


def _conv_block(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    norm: bool,
    activation: nn.Module | None,
) -> nn.Sequential:
    """Convolution, then batch norm and activation (each optional): the plain twin of
    :class:`_PartialBlock`."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=not norm,
        )
    ]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


class ConvUNet(_UNetBase):
    """:class:`PConvUNet` with plain convolutions: the mask is an input channel, not a rule.

    The input is ``image * (1 - hole)`` stacked with ``hole`` (``in_channels + 1`` channels);
    the network sees zeros in the holes and has to learn from the extra channel that they are
    missing, not black. The decoder concatenates features only; the last layer also sees the
    4-channel input. Arguments as for :class:`PConvUNet`.
    """

    mask_channels = 1  # the hole mask is an input channel
    block = staticmethod(_conv_block)  # one layer: lesson 08's gated twin replaces it

    def __init__(
        self,
        depth: int = 8,
        channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512),
        kernels: tuple[int, ...] = (7, 5, 5, 3, 3, 3, 3, 3),
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__(depth, channels, kernels, in_channels, out_channels)
        # The image plus the hole channel (the paper's baseline, below, has no hole channel).
        widths = (in_channels + self.mask_channels, *self.channels)
        self.encoder = nn.ModuleList(
            self.block(widths[i], widths[i + 1], kernels[i], 2, i > 0, nn.ReLU())
            for i in range(depth)
        )
        self.decoder = nn.ModuleList(
            (self.block if i > 0 else _conv_block)(  # the output layer stays plain
                widths[i + 1] + widths[i],
                widths[i] if i > 0 else out_channels,
                3,
                1,
                i > 0,
                nn.LeakyReLU(0.2) if i > 0 else None,
            )
            for i in reversed(range(depth))
        )

    def _predict(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        x = self._network_input(image, hole)  # (B, C_in + mask_channels, H, W)
        skips = []
        for level, block in enumerate(self.encoder):
            skips.append(x)
            x = block(x)  # (B, C, H/2, W/2)
            if level == 0:
                x = self._first_features(x, hole)
        for block in self.decoder:
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return x

    def _first_features(self, features: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The first layer's output, as the rest of the network sees it: unchanged here;
        lesson 09's :class:`~course_lib.mpe.PositionedConvUNet` adds where each pixel lies in
        the hole."""
        del hole  # a plain ConvUNet learns the hole only from its input channel
        return features

    def _network_input(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The image with its holes zeroed, and the hole mask as one more channel."""
        return torch.cat([image, hole], dim=1)  # (B, C_in + 1, H, W), holes already zeroed


class PlainConvUNet(ConvUNet):
    """The partial-convolution paper's baseline: :class:`ConvUNet` without the hole channel.

    The paper compares its layer with the same network built of plain convolutions whose
    holes are filled with the mean pixel value (127.5 of 255) and which is *not told* where
    they are: it has to recognise a hole by its flat grey. :class:`ConvUNet`, which gets the
    mask as a channel, is the stronger, modern baseline; this one is the comparison the paper
    made. Arguments as for :class:`PConvUNet`.
    """

    mask_channels = 0  # no mask channel: the network must find the holes itself
    HOLE_VALUE = 0.5  # the paper's mean pixel value, 127.5 / 255

    def _network_input(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The image with its holes (already zeroed) filled with grey; no mask channel."""
        return image + self.HOLE_VALUE * hole  # (B, C_in, H, W)
