"""Fast Fourier Convolutions and a small LaMa (lesson 05).

A convolution sees a small window: after ``n`` 3x3 layers, one output pixel depends on a
``(2n + 1) x (2n + 1)`` patch of the input. To fill a large hole, a network needs context from
far away, and stacking enough convolutions to reach it takes many layers. The Fast Fourier
Convolution (FFC) of LaMa (Suvorov et al., WACV 2022) gets there in one layer: a 1x1
convolution applied to the image's *Fourier spectrum* mixes every frequency, and every
frequency depends on every pixel, so each output pixel depends on the whole image.

The pieces, from the inside out:

- :class:`FourierUnit`: real FFT over (H, W), a 1x1 convolution + batch norm + ReLU on the
  real and imaginary parts stacked as channels, inverse real FFT.
- :class:`SpectralTransform`: a 1x1 convolution to half the channels, a FourierUnit (and,
  optionally, a *local* Fourier unit on the four quadrants), a 1x1 convolution of the sum.
- :class:`FFC`: channels are split into a *local* part (ordinary convolutions) and a
  *global* part (the spectral transform); four paths exchange information between them.
- :class:`FFC_BN_ACT`, :class:`FFCResnetBlock`: the FFC with batch norm and activation on
  each part, and LaMa's residual block of two of them.
- :class:`TinyLaMa`: LaMa's generator (stem, 3 stride-2 downsamplings, FFC residual blocks,
  3 transposed-convolution upsamplings, sigmoid), and :class:`ConvLaMa`, the same network
  with ordinary residual blocks and the same number of parameters, for a fair comparison.

The local/global pair travels between FFC layers as a tuple ``(local, global)``. A part with
no channels (ratio 0 or 1) is ``None``, never a 0-channel tensor, so that "this path does not
exist" is explicit; :func:`split_channels` and :func:`merge_channels` convert between one
tensor and the pair. The global part is always the *last* channels of the merged tensor.

The FFTs always run in float32, with autocast switched off around them: half-precision FFTs
are not available on every backend (CPU bfloat16, cuFFT float16 only for powers of two) and
lose precision fast because a spectrum's values are sums over the whole image.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.networks import InpaintingNetwork
from course_lib.validate import check_image, check_mask

__all__ = [
    "CONFIGS",
    "FFC",
    "FFC_BN_ACT",
    "ConvLaMa",
    "ConvResnetBlock",
    "FFCResnetBlock",
    "FourierUnit",
    "SpectralTransform",
    "TinyLaMa",
    "global_channels",
    "input_gradient_map",
    "matched_hidden_channels",
    "merge_channels",
    "split_channels",
]

Parts = tuple[torch.Tensor | None, torch.Tensor | None]
"""The ``(local, global)`` pair that FFC layers pass on; a part without channels is None."""

CONFIGS: dict[str, dict[str, object]] = {
    "small": {"channels": 16, "blocks": 4, "downsamplings": 3, "ratio": 0.75},
    "shallow": {"channels": 32, "blocks": 4, "downsamplings": 1, "ratio": 0.75},
    "lesson": {"channels": 64, "blocks": 9, "downsamplings": 3, "ratio": 0.75},
}
"""Named networks. ``"small"``: LaMa's layout shrunk for the course's 64x64 images (about
0.9 M parameters); its three downsamplings leave an 8x8 bottleneck, where stripes of 4-16 px
are one or two cells wide. ``"shallow"``: one downsampling, so the Fourier unit works on a
32x32 grid (half the image's resolution) where those periods are 2-8 cells; ConvLaMa's
receptive field in this layout is smaller than a 64x64 image. ``"lesson"``: LaMa's standard
generator (ngf 64, 9 FFC blocks at 512 channels, about 27 M parameters), too slow to train on
a CPU but the real thing to look at."""


# ---------------------------------------------------------------------------------------------
# Local and global parts
# ---------------------------------------------------------------------------------------------


def global_channels(channels: int, ratio: float) -> int:
    """How many of ``channels`` go to the global part: ``channels * ratio`` rounded down, as
    in LaMa (64 channels at ratio 0.75: 48 global, 16 local)."""
    return int(channels * ratio)


def split_channels(x: torch.Tensor, ratio: float) -> Parts:
    """Split ``x`` ``(B, C, H, W)`` into ``(local, global)``: the first ``C - C_g`` channels
    and the last ``C_g = int(C * ratio)``; a part with no channels is None."""
    n_global = global_channels(x.shape[1], ratio)
    n_local = x.shape[1] - n_global
    local = x[:, :n_local] if n_local else None  # (B, C - C_g, H, W), a view
    global_ = x[:, n_local:] if n_global else None  # (B, C_g, H, W), a view
    return local, global_


def merge_channels(parts: Parts) -> torch.Tensor:
    """The inverse of :func:`split_channels`: ``local`` and ``global`` concatenated along
    the channels (a None part is left out)."""
    present = [part for part in parts if part is not None]
    if not present:
        raise ValueError("merge_channels: both parts are None; there is nothing to merge.")
    return present[0] if len(present) == 1 else torch.cat(present, dim=1)


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """``a + b`` where a missing path (None) contributes nothing."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _apply(module: nn.Module | None, x: torch.Tensor | None) -> torch.Tensor | None:
    """``module(x)``, or None when the path does not exist (no module or no input)."""
    if module is None or x is None:
        return None
    return module(x)


# ---------------------------------------------------------------------------------------------
# The spectral path
# ---------------------------------------------------------------------------------------------


def _without_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which autocast is off for ``device``, so that the FFT runs in the dtype
    we give it (float32), not in a half precision chosen by autocast."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()  # no autocast exists for this device (e.g. "meta")


class FourierUnit(nn.Module):
    """A 1x1 convolution in the frequency domain: every output pixel sees the whole input.

    Steps, for ``x`` of shape ``(B, C, H, W)``:

    1. ``rfftn`` over (H, W) with ``norm="ortho"`` (the transform then preserves energy, so
       the spectrum has the same scale as the image whatever its size):
       ``(B, C, H, W // 2 + 1)`` complex. The real FFT keeps only half the columns: the other
       half is the complex conjugate mirror of these for a real input.
    2. Real and imaginary parts stacked as channels, real parts first:
       ``(B, 2, C, H, W // 2 + 1)`` viewed as ``(B, 2C, H, W // 2 + 1)``, i.e. channel ``c``
       is the real part and channel ``C + c`` the imaginary part of input channel ``c``.
    3. 1x1 convolution ``2C -> 2C_out`` (no bias: batch norm follows), batch norm, ReLU.
    4. Back to complex ``(B, C_out, H, W // 2 + 1)`` and ``irfftn`` with the original size
       ``s=(H, W)`` given explicitly: ``W // 2 + 1`` columns come from both ``W = 2k`` and
       ``W = 2k + 1``, and without ``s`` an odd width would come back one pixel narrower.

    The FFTs run in float32 with autocast off; the convolution runs in the input's dtype
    (under autocast, in the autocast dtype), and the output has the input's dtype.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"FourierUnit needs at least one input and one output channel, got "
                f"in_channels={in_channels}, out_channels={out_channels}."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Conv2d(2 * in_channels, 2 * out_channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(2 * out_channels)
        self.activation = nn.ReLU(inplace=True)  # in place: the batch norm's output is fresh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        height, width = x.shape[-2:]
        with _without_autocast(x.device):
            spectrum = torch.fft.rfftn(x.float(), dim=(-2, -1), norm="ortho")  # (B, C, H, W//2+1)
        # One copy: the real and imaginary views of the complex tensor are read once each.
        stacked = torch.cat([spectrum.real, spectrum.imag], dim=1)  # (B, 2C, H, W//2+1)
        stacked = self.activation(self.norm(self.conv(stacked.to(dtype))))  # (B, 2C_out, ...)
        real, imaginary = stacked.float().chunk(2, dim=1)  # (B, C_out, H, W//2+1) each
        with _without_autocast(x.device):
            spectrum = torch.complex(real, imaginary)  # (B, C_out, H, W//2+1)
            y = torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1), norm="ortho")
        return y.to(dtype)  # (B, C_out, H, W)


class SpectralTransform(nn.Module):
    """The global path of an FFC: 1x1 convolution to ``out_channels // 2`` channels + batch
    norm + ReLU, a :class:`FourierUnit`, optionally a local Fourier unit, and a 1x1
    convolution of the sum ``x + fourier(x) [+ local_fourier(x)]`` to ``out_channels``.

    Halving the channels before the FFT makes the spectral path cheap; the sum with ``x`` is
    a residual connection around the Fourier unit.

    The *local Fourier unit* (LFU, ``enable_lfu=True``) cuts the first quarter of the
    channels into the four quadrants of the image, stacks the quadrants along the channels,
    runs a Fourier unit on that half-size image and tiles the result 2x2 back to full size:
    a spectrum of quarter-size patches, i.e. semi-global context. It needs an even height and
    width and at least 8 output channels. ``stride=2`` halves the size first (2x2 average).
    """

    def __init__(
        self, in_channels: int, out_channels: int, enable_lfu: bool = False, stride: int = 1
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 2:
            raise ValueError(
                f"SpectralTransform needs in_channels >= 1 and out_channels >= 2 (it works on "
                f"out_channels // 2 channels), got {in_channels} and {out_channels}."
            )
        if stride not in (1, 2):
            raise ValueError(f"SpectralTransform: stride must be 1 or 2, got {stride!r}.")
        hidden = out_channels // 2
        if enable_lfu and hidden < 4:
            raise ValueError(
                f"SpectralTransform: the local Fourier unit splits a quarter of the "
                f"out_channels // 2 = {hidden} channels into 4 quadrants, so it needs "
                f"out_channels >= 8, got {out_channels}."
            )
        self.enable_lfu = enable_lfu
        self.downsample = nn.AvgPool2d(2) if stride == 2 else nn.Identity()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.fourier = FourierUnit(hidden, hidden)
        # The LFU's input: a quarter of the channels (rounded down) times four quadrants.
        self.local_fourier = FourierUnit(4 * (hidden // 4), hidden) if enable_lfu else None
        self.expand = nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(self.downsample(x))  # (B, C_out/2, H, W)
        total = x + self.fourier(x)
        if self.local_fourier is not None:
            total = total + self._local_fourier(x)
        return self.expand(total)  # (B, C_out, H, W)

    def _local_fourier(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if height % 2 or width % 2:
            raise ValueError(
                f"the local Fourier unit (enable_lfu=True) cuts the image into 2x2 quadrants "
                f"and needs an even height and width, got {height}x{width}; pad the input to "
                "even sizes or use enable_lfu=False."
            )
        quarter = channels // 4
        half_h, half_w = height // 2, width // 2
        # (B, q, H, W) -> (B, q, 2, H/2, 2, W/2): row half i, column half j of each channel
        quadrants = x[:, :quarter].reshape(batch, quarter, 2, half_h, 2, half_w)
        # -> (B, 2, 2, q, H/2, W/2) -> (B, 4q, H/2, W/2): quadrant (i, j) is channel block 2i+j
        quadrants = quadrants.permute(0, 2, 4, 1, 3, 5).reshape(batch, 4 * quarter, half_h, half_w)
        y = self.local_fourier(quadrants)  # (B, C_out/2, H/2, W/2)
        return y.repeat(1, 1, 2, 2)  # (B, C_out/2, H, W): the same answer in every quadrant


# ---------------------------------------------------------------------------------------------
# The Fast Fourier Convolution
# ---------------------------------------------------------------------------------------------


class FFC(nn.Module):
    """Fast Fourier Convolution: a convolution with a local and a global part.

    The ``in_channels`` are split into ``in_g = int(in_channels * ratio_gin)`` global and the
    rest local channels (likewise for the output with ``ratio_gout``), and::

        local_out  = l2l(local) + g2l(global)      # ordinary convolutions
        global_out = l2g(local) + g2g(global)      # g2g: SpectralTransform, sees everything

    ``l2l``, ``l2g`` and ``g2l`` are ``nn.Conv2d`` with the given kernel, stride, padding,
    dilation and padding mode. A path whose input or output part has no channels (ratio 0
    or 1) does not exist: it is None and contributes nothing. With both ratios 0 the FFC is
    an ordinary convolution.

    ``forward`` takes and returns a ``(local, global)`` tuple whose parts have exactly
    ``in_channels - in_g`` and ``in_g`` channels, or are None when that count is 0 (see
    :func:`split_channels`). ``stride`` may be 1 or 2 (the spectral path then averages 2x2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = False,
        padding_mode: str = "reflect",
        enable_lfu: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"FFC needs at least one input and one output channel, got "
                f"in_channels={in_channels}, out_channels={out_channels}."
            )
        for name, ratio in (("ratio_gin", ratio_gin), ("ratio_gout", ratio_gout)):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(
                    f"FFC: {name} is the fraction of global channels, a number in [0, 1]; "
                    f"got {ratio!r}."
                )
        self.in_global = global_channels(in_channels, ratio_gin)
        self.in_local = in_channels - self.in_global
        self.out_global = global_channels(out_channels, ratio_gout)
        self.out_local = out_channels - self.out_global

        def conv(inputs: int, outputs: int) -> nn.Conv2d | None:
            if not inputs or not outputs:
                return None
            return nn.Conv2d(
                inputs,
                outputs,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=bias,
                padding_mode=padding_mode,
            )

        self.l2l = conv(self.in_local, self.out_local)
        self.l2g = conv(self.in_local, self.out_global)
        self.g2l = conv(self.in_global, self.out_local)
        self.g2g = (
            SpectralTransform(self.in_global, self.out_global, enable_lfu, stride)
            if self.in_global and self.out_global
            else None
        )

    def forward(self, x: Parts) -> Parts:
        local, global_ = x
        self._check_part("local", local, self.in_local)
        self._check_part("global", global_, self.in_global)
        local_out = _add(_apply(self.l2l, local), _apply(self.g2l, global_))  # (B, out_l, H, W)
        global_out = _add(_apply(self.l2g, local), _apply(self.g2g, global_))  # (B, out_g, H, W)
        return local_out, global_out

    def _check_part(self, name: str, part: torch.Tensor | None, channels: int) -> None:
        got = 0 if part is None else part.shape[1]
        if (part is None) != (channels == 0) or got != channels:
            raise ValueError(
                f"FFC expected a {name} part with {channels} channels "
                f"({'None' if channels == 0 else 'a tensor'}), got "
                f"{'None' if part is None else tuple(part.shape)}; pass the input through "
                "split_channels(x, ratio_gin) with this FFC's ratio."
            )


class FFC_BN_ACT(nn.Module):
    """An :class:`FFC` followed by batch norm and an activation on each part: LaMa's basic
    layer, under LaMa's name so that students find it in their code. Arguments as for
    :class:`FFC`; ``activation`` makes the activation module (None for none)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        padding_mode: str = "reflect",
        enable_lfu: bool = False,
        activation: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        # No bias in the convolutions: the batch norm's mean would remove it anyway.
        self.ffc = FFC(
            in_channels,
            out_channels,
            kernel_size,
            ratio_gin,
            ratio_gout,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=False,
            padding_mode=padding_mode,
            enable_lfu=enable_lfu,
        )
        out_local, out_global = self.ffc.out_local, self.ffc.out_global

        def norm_act(channels: int) -> nn.Sequential | None:
            if not channels:
                return None
            layers: list[nn.Module] = [nn.BatchNorm2d(channels)]
            if activation is not None:
                layers.append(activation())
            return nn.Sequential(*layers)

        self.local_norm_act = norm_act(out_local)
        self.global_norm_act = norm_act(out_global)

    def forward(self, x: Parts) -> Parts:
        local, global_ = self.ffc(x)
        return _apply(self.local_norm_act, local), _apply(self.global_norm_act, global_)


# ---------------------------------------------------------------------------------------------
# Residual blocks
# ---------------------------------------------------------------------------------------------


class FFCResnetBlock(nn.Module):
    """LaMa's residual block: two :class:`FFC_BN_ACT` with 3x3 kernels (reflect padding),
    ``ratio`` of the channels global in and out, and a residual connection on each part.

    Takes and returns a ``(local, global)`` tuple (see :func:`split_channels`).
    """

    def __init__(
        self, channels: int, ratio: float = 0.75, dilation: int = 1, enable_lfu: bool = False
    ) -> None:
        super().__init__()
        self.channels = channels
        self.ratio = ratio

        def layer() -> FFC_BN_ACT:
            return FFC_BN_ACT(
                channels,
                channels,
                kernel_size=3,
                ratio_gin=ratio,
                ratio_gout=ratio,
                padding=dilation,
                dilation=dilation,
                enable_lfu=enable_lfu,
            )

        self.conv1 = layer()
        self.conv2 = layer()

    def forward(self, x: Parts) -> Parts:
        local, global_ = self.conv2(self.conv1(x))
        return _add(x[0], local), _add(x[1], global_)


class ConvResnetBlock(nn.Module):
    """The same block with ordinary convolutions: two 3x3 convolution + batch norm + ReLU
    (reflect padding) and a residual connection, on a plain ``(B, C, H, W)`` tensor.

    ``hidden_channels`` (default ``channels``) is the width between the two convolutions;
    :class:`ConvLaMa` narrows it to match an FFC block's parameter count. One output pixel
    sees the 5x5 input patch around it, and nothing else.
    """

    def __init__(self, channels: int, hidden_channels: int | None = None) -> None:
        super().__init__()
        hidden = channels if hidden_channels is None else hidden_channels
        if channels < 1 or hidden < 1:
            raise ValueError(
                f"ConvResnetBlock needs positive widths, got channels={channels}, "
                f"hidden_channels={hidden_channels}."
            )
        self.channels = channels
        self.hidden_channels = hidden
        self.conv1 = _conv_bn_relu(channels, hidden, kernel_size=3)
        self.conv2 = _conv_bn_relu(hidden, channels, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
) -> nn.Sequential:
    """Convolution (reflect padding, no bias: batch norm follows), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
            padding_mode="reflect",
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def matched_hidden_channels(channels: int, ratio: float = 0.75) -> int:
    """The ``hidden_channels`` that give a :class:`ConvResnetBlock` (nearly) the parameter
    count of an ``FFCResnetBlock(channels, ratio)``.

    A ConvResnetBlock of hidden width ``m`` has ``2 * 9 * channels * m`` convolution weights
    and ``2 * m + 2 * channels`` batch-norm parameters; solve for ``m``.
    """
    with torch.device("meta"):  # count the FFC block's parameters without allocating them
        target = sum(p.numel() for p in FFCResnetBlock(channels, ratio).parameters())
    return max(1, round((target - 2 * channels) / (18 * channels + 2)))


# ---------------------------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------------------------


class _LaMaBase(InpaintingNetwork, abc.ABC):
    """What TinyLaMa and ConvLaMa share: input checks, padding and cropping, the stem, the
    downsampling and upsampling stages and the output layer (configurations and compositing:
    :class:`InpaintingNetwork`)."""

    CONFIGS = CONFIGS

    def __init__(
        self, channels: int = 64, blocks: int = 9, downsamplings: int = 3, ratio: float = 0.75
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for label, value, minimum in (
            ("channels", channels, 1),
            ("blocks", blocks, 0),
            ("downsamplings", downsamplings, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name}: {label} must be an int >= {minimum}, got {value!r}.")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name}: ratio must be in [0, 1], got {ratio!r}.")
        self.channels = channels
        self.blocks = blocks
        self.downsamplings = downsamplings
        self.ratio = ratio
        widths = [channels * 2**i for i in range(downsamplings + 1)]  # e.g. 64, 128, 256, 512
        self.bottleneck_channels = widths[-1]
        # Input: the image with its holes zeroed (3 channels) and the hole mask (1 channel).
        self.stem = _conv_bn_relu(4, channels, kernel_size=7)  # (B, C, H, W)
        self.down = nn.Sequential(  # each stage: (B, c, h, w) -> (B, 2c, h/2, w/2)
            *(_conv_bn_relu(c, 2 * c, kernel_size=3, stride=2) for c in widths[:-1])
        )
        self.up = nn.Sequential(  # each stage: (B, 2c, h, w) -> (B, c, 2h, 2w)
            *(
                nn.Sequential(
                    nn.ConvTranspose2d(
                        2 * c, c, 3, stride=2, padding=1, output_padding=1, bias=False
                    ),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                )
                for c in reversed(widths[:-1])
            )
        )
        self.head = nn.Conv2d(channels, 3, kernel_size=7, padding=3, padding_mode="reflect")

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """Predict every pixel of ``image`` ``(B, 3, H, W)`` from its known pixels.

        ``hole`` is ``(B, 1, H, W)``, 1 = hole. Any ``H, W >= 1`` work: the input is padded
        (right and bottom) to a multiple of ``2**downsamplings`` and the output cropped back.
        Returns the raw prediction ``(B, 3, H, W)`` in [0, 1] (a sigmoid), not the composite
        (see :meth:`inpaint`).
        """
        check_image(image)
        check_mask(hole, like=image)
        height, width = image.shape[-2:]
        padding = (0, self._padded(width) - width, 0, self._padded(height) - height)
        # Zero the hole pixels first: whatever values they hold must not reach the network.
        known = image * (1 - hole)  # (B, 3, H, W)
        # Reflect, not zeros: a black frame would be a strong edge for the convolutions and,
        # through the FFT's periodic view of the image, for the opposite border too. Reflect
        # needs padding < size; tiny images fall back to repeating the edge pixel.
        mode = "reflect" if padding[1] < width and padding[3] < height else "replicate"
        known = F.pad(known, padding, mode=mode)  # (B, 3, H + pad, W + pad)
        # The padding is not part of the image: mark it as hole, and it is cropped off anyway.
        hole = F.pad(hole, padding, value=1.0)  # (B, 1, H + pad, W + pad)
        x = torch.cat([known, hole], dim=1)  # (B, 4, H + pad, W + pad)
        x = self.down(self.stem(x))  # (B, C * 2**d, (H + pad) / 2**d, (W + pad) / 2**d)
        x = self._bottleneck(x)  # same shape
        x = self.head(self.up(x))  # (B, 3, H + pad, W + pad)
        return torch.sigmoid(x[..., :height, :width])

    def _padded(self, size: int) -> int:
        """``size`` rounded up to a multiple of ``2**downsamplings``, and at least twice that
        (and 4): reflect padding by 1 (3 in the 7x7 stem) needs 2 (4) pixels at every level."""
        multiple = 2**self.downsamplings
        return max(-(-size // multiple) * multiple, 2 * multiple, 4)

    @abc.abstractmethod
    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The residual blocks at the lowest resolution; shape-preserving."""


class TinyLaMa(_LaMaBase):
    """LaMa's generator, scaled by ``channels`` (LaMa's ngf) and ``blocks``.

    A 7x7 convolution stem on the 4-channel input, ``downsamplings`` stride-2 convolution +
    batch norm + ReLU stages (channels doubling), ``blocks`` :class:`FFCResnetBlock` at the
    bottleneck with a fraction ``ratio`` of the channels global, as many transposed-convolution
    + batch norm + ReLU upsampling stages, and a 7x7 convolution to 3 channels with a sigmoid.
    All convolutions pad by reflection. See :meth:`forward` for the interface.
    """

    def __init__(
        self, channels: int = 64, blocks: int = 9, downsamplings: int = 3, ratio: float = 0.75
    ) -> None:
        super().__init__(channels, blocks, downsamplings, ratio)
        self.resnet = nn.ModuleList(
            FFCResnetBlock(self.bottleneck_channels, ratio) for _ in range(blocks)
        )

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        parts = split_channels(x, self.ratio)  # (local, global)
        for block in self.resnet:
            parts = block(parts)
        return merge_channels(parts)


class ConvLaMa(_LaMaBase):
    """:class:`TinyLaMa` with :class:`ConvResnetBlock` at the bottleneck: no global path.

    Same stem, downsampling, upsampling and output layers, and the same number of blocks;
    each block's hidden width is narrowed (:func:`matched_hidden_channels`) so that a block
    has the parameters of the FFC block it replaces, and the whole network those of the
    ``TinyLaMa(channels, blocks, downsamplings, ratio)`` it is compared with (``ratio`` only
    sets that width). The comparison then isolates what the Fourier path adds.
    """

    def __init__(
        self,
        channels: int = 64,
        blocks: int = 9,
        downsamplings: int = 3,
        ratio: float = 0.75,
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__(channels, blocks, downsamplings, ratio)
        width = self.bottleneck_channels
        if hidden_channels is None:
            hidden_channels = matched_hidden_channels(width, ratio)
        self.hidden_channels = hidden_channels
        self.resnet = nn.Sequential(
            *(ConvResnetBlock(width, hidden_channels) for _ in range(blocks))
        )

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnet(x)


# ---------------------------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------------------------


def input_gradient_map(
    block_or_model: nn.Module,
    size: int | tuple[int, int],
    position: tuple[int, int],
    seed: int = 0,
) -> torch.Tensor:
    """Which input pixels one output pixel depends on: ``|d out[:, row, col].sum() / d x|``
    summed over input channels, an ``(H, W)`` map (float32, on the module's device).

    ``block_or_model`` is an :class:`FFCResnetBlock` or a :class:`ConvResnetBlock` (input:
    random ``(1, channels, H, W)`` features), or a :class:`TinyLaMa` / :class:`ConvLaMa`
    (input: a random image with no holes). ``size`` is ``H`` (square) or ``(H, W)``;
    ``position`` is the output pixel ``(row, col)``.

    The map is taken in eval mode (the previous modes are restored afterwards): in training
    mode batch norm normalises with statistics over *all* pixels, which would make every
    pixel depend a little on every other one, for convolutions too.
    """
    height, width = (size, size) if isinstance(size, int) else size
    row, col = position
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"position {position} is outside the {height}x{width} image.")
    module = block_or_model
    if isinstance(module, _LaMaBase):
        channels = 3
    elif isinstance(module, (FFCResnetBlock, ConvResnetBlock)):
        channels = module.channels
    else:
        raise ValueError(
            "input_gradient_map takes an FFCResnetBlock, a ConvResnetBlock, a TinyLaMa or a "
            f"ConvLaMa, got {type(module).__name__}."
        )
    device = next(module.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, height, width, generator=generator).to(device)
    x.requires_grad_(True)
    modes = {submodule: submodule.training for submodule in module.modules()}
    module.eval()
    try:
        if isinstance(module, _LaMaBase):
            out = module(x, torch.zeros_like(x[:, :1]))
        elif isinstance(module, FFCResnetBlock):
            out = merge_channels(module(split_channels(x, module.ratio)))
        else:
            out = module(x)
        (gradient,) = torch.autograd.grad(out[0, :, row, col].sum(), x)
    finally:
        for submodule, training in modes.items():
            submodule.training = training
    return gradient[0].abs().sum(dim=0).float()  # (H, W)
