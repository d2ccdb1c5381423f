"""DeepFill v1's coarse-to-fine network with contextual attention, at the course's scale (lesson 08).

*Generative Image Inpainting with Contextual Attention* (Yu et al., CVPR 2018) fills a hole in
two passes. A **coarse** network (GLCIC's dilated completion network, :mod:`course_lib.glcic`)
makes a blurry first guess; a **refinement** network starts from that guess pasted into the
hole and runs two branches side by side at a quarter of the resolution:

* a convolution branch with dilated convolutions, which *hallucinates* from a wide context;
* an attention branch whose :func:`~course_lib.contextual_attention.contextual_attention`
  *copies*: every hole location takes a softmax-weighted mix of known feature patches that
  look like its own coarse guess.

The two are concatenated and decoded to the image. ``attention=False`` builds the same
network with the attention layer replaced by the identity (every weight the same), so that a
comparison isolates the layer. As in the paper, convolutions are followed by ELU and no
normalisation; unlike it, the attention matches at the branch's own resolution (see
:mod:`course_lib.contextual_attention`) and the output goes through a sigmoid into [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.contextual_attention import contextual_attention, usable_patches
from course_lib.glcic import CompletionNetwork
from course_lib.networks import InpaintingNetwork
from course_lib.validate import check_image, check_mask

__all__ = ["CONFIGS", "CoarseToFine"]

CONFIGS: dict[str, dict[str, object]] = {
    "small": {"width": 16, "attention": True},
    "small_no_attention": {"width": 16, "attention": False},
}
"""The course's pair: 64x64 images, attention on a 16x16 map of 64 channels, or none."""

DOWNSAMPLING = 4  # two stride-2 convolutions before the branches meet the attention


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1, kernel: int = 3) -> nn.Module:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation), nn.ELU())


def _encoder(width: int, dilations: tuple[int, ...]) -> nn.Sequential:
    """4 channels (coarse composite + hole) at ``H`` -> ``4 * width`` at ``H / 4``."""
    layers = [_conv(4, width, kernel=5), _conv(width, 2 * width, stride=2)]
    layers += [_conv(2 * width, 2 * width), _conv(2 * width, 4 * width, stride=2)]
    layers += [_conv(4 * width, 4 * width, dilation=d) for d in dilations]
    return nn.Sequential(*layers)


def attention_hole(hole: torch.Tensor) -> torch.Tensor:
    """The hole at the attention's resolution ``(B, 1, H / 4, W / 4)``: a cell is hole if any
    of its pixels is, so that no copied patch carries made-up pixels."""
    return F.max_pool2d(hole.float(), DOWNSAMPLING)


class CoarseToFine(InpaintingNetwork):
    """Image with zeroed holes + hole ``(B, 4, H, W)`` -> prediction ``(B, 3, H, W)`` in [0, 1];
    ``H`` and ``W`` must be multiples of 4. :meth:`stages` also returns the coarse guess and
    the attention (``None`` without the layer)."""

    CONFIGS = CONFIGS

    def __init__(self, width: int = 16, attention: bool = True) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 2 or width % 2:
            raise ValueError(f"CoarseToFine: width must be an even int >= 2, got {width!r}.")
        self.use_attention = bool(attention)
        self.coarse = CompletionNetwork(width)
        self.hallucinate = _encoder(width, dilations=(2, 4, 8, 16))
        self.copy_in = _encoder(width, dilations=(1,))
        self.copy_out = nn.Sequential(_conv(4 * width, 4 * width), _conv(4 * width, 4 * width))
        self.decoder = nn.Sequential(
            _conv(8 * width, 4 * width),
            _conv(4 * width, 4 * width),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(4 * width, 2 * width),
            _conv(2 * width, 2 * width),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv(2 * width, width),
            _conv(width, width // 2),
            nn.Conv2d(width // 2, 3, 3, padding=1),
        )

    def extra_repr(self) -> str:
        return f"attention={self.use_attention}"

    def _copy(
        self, features: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The attention branch's layer: known patches pasted into the hole locations."""
        if not self.use_attention:
            return features, None
        small = attention_hole(hole)  # (B, 1, h, w)
        # A sample whose every patch touches the hole (a mask of nearly the whole image) has
        # nothing to copy from: it keeps its features, and its attention stays 0.
        able = usable_patches(small).any(dim=1)  # (B,)
        batch, _, height, width = features.shape
        attention = features.new_zeros(batch, height * width, height, width)
        copied = features.clone()
        if able.any():
            pasted, weights = contextual_attention(features[able], features[able], small[able])
            copied[able], attention[able] = pasted, weights.to(attention.dtype)
        return copied, attention

    def stages(
        self, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(coarse (B, 3, H, W), refined (B, 3, H, W), attention (B, hw, h, w) or None)``,
        ``h = H / 4``: ``attention[b, l, y, x]`` is the weight location ``(y, x)`` gives to
        the patch centred at ``(l // w, l % w)``."""
        check_image(image)
        check_mask(hole, like=image)
        if image.shape[-2] % DOWNSAMPLING or image.shape[-1] % DOWNSAMPLING:
            raise ValueError(
                f"CoarseToFine needs sides that are multiples of {DOWNSAMPLING}, got "
                f"{tuple(image.shape[-2:])}; pad the image (and mark the padding as hole) first."
            )
        known = image * (1 - hole)  # (B, 3, H, W): holes zeroed
        coarse = self.coarse(known, hole)  # (B, 3, H, W)
        x = torch.cat([known + hole * coarse, hole], dim=1)  # (B, 4, H, W): the first guess
        copied, attention = self._copy(self.copy_in(x), hole)  # (B, 4w, h, w)
        merged = torch.cat([self.hallucinate(x), self.copy_out(copied)], dim=1)  # (B, 8w, h, w)
        return coarse, torch.sigmoid(self.decoder(merged)), attention

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.stages(image, hole)[1]
