"""Partial convolution: a convolution that looks only at valid pixels (lesson 03).

Liu et al. (ECCV 2018) write their masks with **1 = valid** (a known pixel), the opposite of
the course's 1 = hole; the argument is therefore named ``valid`` and callers pass
``masks.to_valid(hole)``, i.e. ``1 - hole``.

For a window ``X`` of the input, its mask ``M`` and the weights ``W``, the layer computes

    y  = W^T (X ⊙ M) * sum(1) / sum(M) + b    where sum(M) > 0
    y  = 0                                    where sum(M) = 0
    m' = 1 where sum(M) > 0, else 0           (the updated mask)

* ``X ⊙ M`` zeroes the hole pixels, so their values (and their gradients) play no part.
* ``sum(1) / sum(M)`` scales the sum over the valid pixels up to a full window, so the output
  does not fade where the window half-overlaps a hole. ``sum(1)`` counts the window: ``k*k``
  for a single-channel mask, ``C_in*k*k`` for a mask with one channel per input channel
  (with dilation the window still holds ``k*k`` positions, only spread out).
* The bias ``b`` is added after the scaling (it is not rescaled), and only where the window
  saw a valid pixel: a window that saw none outputs exactly 0.
* ``m'``, the updated mask, marks every output that saw at least one valid pixel, so holes
  shrink from layer to layer until a deep enough network has filled them.

**Padding ratios.** The zero padding of the border is "not valid" too. With an all-ones mask,
zero padding 1 and a 3x3 kernel, the ratio ``sum(1) / sum(M)`` is 9/9 = 1 inside the image,
9/6 = 1.5 on its edges and 9/4 = 2.25 at its corners: the layer then corrects the darkening
that zero padding causes at the border ("partial-convolution padding").

**Pitfalls seen in ports of the layer** (each has a test in ``tests/test_partial_conv.py``):

1. dividing by ``sum(M)`` only, which gives 1/9 of a convolution in the interior;
2. forgetting ``C_in`` in the window of a multi-channel mask;
3. caching the mask between calls, so the next call reuses a stale mask: this layer keeps no
   state between calls;
4. ``1 / (sum(M) + eps)`` overflowing to inf in float16: the mask arithmetic here stays in
   float32, even under ``torch.autocast``, and divides by ``sum(M).clamp(min=1)``;
5. a mask kernel that does not move with the module's ``.to(device)``: here it is a buffer.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PartialConv2d"]


class PartialConv2d(nn.Conv2d):
    """A 2-D partial convolution: ``forward(x, valid) -> (y, new_valid)``.

    It is an ``nn.Conv2d`` (same weights, same state_dict, same initialisation) whose forward
    pass masks the input and rescales the output, as in the module docstring.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias: as for
            ``nn.Conv2d`` (zero padding, no groups).
        multi_channel: ``False``: ``valid`` is ``(B, 1, H, W)``, one mask shared by every
            input channel, and ``new_valid`` is ``(B, 1, H', W')``. ``True``: ``valid`` is
            ``(B, C_in, H, W)``, one mask per input channel, the window counts ``C_in*k*k``
            entries, and ``new_valid`` is ``(B, C_out, H', W')``: every output channel saw the
            same window of every input channel, so the updated mask is the same for all of
            them; it is returned with one channel per output channel (a broadcast view, no
            copy) so that it can be concatenated with the features, channel for channel, and
            fed to the next multi-channel layer.
        check_inputs: check the shapes of ``x`` and ``valid`` and that ``valid`` is binary on
            every call (the default, for a layer used on its own). A network that validates
            its mask once at its entry builds its layers with ``False``: the masks it passes
            between layers are binary by construction, and checking them again in every layer
            would cost a pass over every mask.
    """

    mask_kernel: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        multi_channel: bool = False,
        check_inputs: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )
        self.multi_channel = multi_channel
        self.check_inputs = check_inputs
        kernel_height, kernel_width = self.kernel_size
        # sum(1): how many mask entries one window holds.
        self.window = (in_channels if multi_channel else 1) * kernel_height * kernel_width
        # The all-ones kernel that counts the valid pixels of a window. A buffer, so that
        # .to(device) moves it with the weights; not persistent, because it is a constant and
        # the state_dict stays that of a plain nn.Conv2d.
        self.register_buffer(
            "mask_kernel", torch.ones(1, 1, kernel_height, kernel_width), persistent=False
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, multi_channel={self.multi_channel}"

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Convolve the valid pixels of ``x``; return the output and the updated mask.

        Args:
            x: ``(B, C_in, H, W)`` features.
            valid: float mask, exactly 0 or 1, **1 = valid**: ``(B, 1, H, W)``, or
                ``(B, C_in, H, W)`` with ``multi_channel=True``.

        Returns:
            ``y`` ``(B, C_out, H', W')`` in ``x``'s dtype (or autocast's), exactly 0 where the
            window saw no valid pixel, and ``new_valid``, float32 ``(B, 1, H', W')`` (or
            ``(B, C_out, H', W')`` with ``multi_channel=True``), 1 where it saw one.
        """
        if self.check_inputs:
            self._check_inputs(x, valid)
        # The mask path: counts of valid pixels are integers up to C_in*k*k, exact in float32
        # but not in float16/bfloat16 (inexact above 2048/256; float16 overflows above 65504),
        # so it runs in float32 with autocast off. It needs no gradient: the mask is not learned.
        with torch.no_grad(), _autocast_off(x.device.type):
            mask = valid.float()  # (B, 1 or C_in, H, W)
            if self.multi_channel:
                # An all-ones kernel over C_in channels sums the channels, then the window;
                # summing the channels first gives the same counts with a 1-channel conv.
                mask = mask.sum(dim=1, keepdim=True)  # (B, 1, H, W)
            # .float(): the buffer follows .to(dtype) as well, e.g. to float16 with .half().
            counts = F.conv2d(
                mask, self.mask_kernel.float(), None, self.stride, self.padding, self.dilation
            )  # (B, 1, H', W'): sum(M) of every window
            new_valid = (counts > 0).float()  # (B, 1, H', W')
            # clamp(min=1) instead of + eps: windows with no valid pixel get 1 / 1, finite in
            # any dtype, and the factor new_valid then sets their output to exactly 0.
            ratio = self.window / counts.clamp(min=1) * new_valid  # (B, 1, H', W')
        raw = F.conv2d(
            x * valid.to(x.dtype), self.weight, None, self.stride, self.padding, self.dilation
        )  # (B, C_out, H', W'): W^T (X ⊙ M), in autocast's dtype when it is on
        # Scale and add the bias in place: the convolution's backward does not need its output,
        # so this saves two output-sized copies (memory traffic is all this layer adds).
        y = raw.mul_(ratio.to(raw.dtype))  # (B, C_out, H', W')
        if self.bias is not None:
            # + b only where the window saw a valid pixel.
            bias = self.bias.to(y.dtype).view(1, -1, 1, 1)  # (1, C_out, 1, 1)
            y = y.addcmul_(bias, new_valid.to(y.dtype))  # (B, C_out, H', W')
        if self.multi_channel:
            new_valid = new_valid.expand(-1, self.out_channels, -1, -1)  # (B, C_out, H', W')
        return y, new_valid

    def _check_inputs(self, x: torch.Tensor, valid: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` and ``valid`` fit this layer and each other."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"x must be a tensor of shape (B, {self.in_channels}, H, W) for this layer "
                f"(in_channels={self.in_channels}), got {got}."
            )
        channels = self.in_channels if self.multi_channel else 1
        expected = f"(B, {channels}, H, W) = ({x.shape[0]}, {channels}, {x.shape[2]}, {x.shape[3]})"
        fix = "pass 1 - hole (masks.to_valid(hole)): 1 = valid, 0 = hole"
        if not isinstance(valid, torch.Tensor):
            raise ValueError(f"valid must be a float tensor {expected}, got {type(valid)}; {fix}.")
        if not valid.is_floating_point():
            raise ValueError(
                f"valid must be a float tensor of 0s and 1s, got dtype {valid.dtype}; {fix}."
            )
        if valid.dim() != 4 or valid.shape[0] != x.shape[0] or valid.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"valid must have shape {expected} to match x of shape {tuple(x.shape)}, got "
                f"{tuple(valid.shape)}; {fix}."
            )
        if valid.shape[1] != channels:
            hint = (
                "one channel per input channel (multi_channel=True)"
                if self.multi_channel
                else "one channel shared by all input channels; for a mask per input channel "
                "build the layer with multi_channel=True"
            )
            raise ValueError(
                f"valid must have {channels} channel(s), {hint}; expected {expected}, got "
                f"{tuple(valid.shape)}."
            )
        if valid.numel() and not ((valid == 0) | (valid == 1)).all():
            raise ValueError(
                "valid must be binary (exactly 0 or 1, 1 = valid), but it holds other values; "
                f"threshold it, e.g. (valid > 0.5).float(), and {fix}."
            )


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context in which float32 ops stay float32 even inside ``torch.autocast``.

    Devices without autocast (e.g. "meta") have nothing to switch off.
    """
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
