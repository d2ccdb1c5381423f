"""Contextual attention (lesson 08): fill a hole by copying known feature patches that match.

PatchMatch (lesson 02) copies pixels from where the image looks alike; convolutions alone can
only carry information a few pixels per layer. DeepFill v1 (Yu et al., *Generative Image
Inpainting with Contextual Attention*, CVPR 2018) puts the copying inside the network, on
feature maps, and makes it differentiable:

1. cut the background features into ``k x k`` patches, one centred on every location, and
   keep those that contain no hole (they are the known context);
2. score every location of the foreground against every kept patch by **cosine similarity**:
   a convolution of the foreground with the normalised patches as filters, divided by the
   norm of the foreground's own patch at that location (the paper's cosine; the authors' code
   normalises only the background patches, so there the foreground's norm acts as a
   temperature that differs from location to location);
3. **attention propagation**: add the scores of the neighbouring locations matched with the
   neighbouring patches (shifted by the same offset, first along the rows, then the
   columns), so that a coherent region copies a coherent region;
4. a **softmax** over the patches, with a scale (10 in the paper) that makes it nearly a
   choice of the best match;
5. paste the patches back, weighted by the attention: a transposed convolution with the raw
   patches as filters; each output pixel gets ``k * k`` overlapping contributions, averaged.

:func:`contextual_attention` returns the pasted features and the attention, ``(B, L, H, W)``
with ``L = H * W`` patches in row-major order: for a hole location, where it copies from.
The paper matches at half resolution (patches of the downsampled map) to save memory; this
version works at the map's own resolution, which is enough for the course's small maps.
:func:`shift_connection` is Shift-Net's hard, one-location version of the same idea.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.validate import check_mask

__all__ = [
    "SOFTMAX_SCALE",
    "contextual_attention",
    "propagate",
    "shift_connection",
    "usable_patches",
]

SOFTMAX_SCALE = 10.0  # the paper's scale of the cosine similarities before the softmax
CUTOFF = 46.0  # logits this far below the best get weight 0: e**-46 is about 1e-20


def _check_maps(
    first: torch.Tensor, second: torch.Tensor, hole: torch.Tensor, first_name: str, second_name: str
) -> tuple[int, int, int, int]:
    """The entry check of both layers: two feature maps of one shape ``(B, C, H, W)`` and a
    binary ``hole`` ``(B, 1, H, W)`` at their resolution. Returns ``(B, C, H, W)``."""
    if first.dim() != 4 or first.shape != second.shape:
        raise ValueError(
            f"{first_name} and {second_name} must be feature maps (B, C, H, W) of one shape, "
            f"got {tuple(first.shape)} and {tuple(second.shape)}."
        )
    check_mask(hole, name="hole")
    batch, channels, height, width = first.shape
    if hole.shape != (batch, 1, height, width):
        raise ValueError(
            f"hole must be (B, 1, H, W) = {(batch, 1, height, width)} at the maps' resolution, "
            f"got {tuple(hole.shape)}; resize it with F.interpolate(hole, size, mode='nearest')."
        )
    return batch, channels, height, width


def propagate(scores: torch.Tensor, height: int, width: int, size: int = 3) -> torch.Tensor:
    """Attention propagation of ``scores`` ``(B, L, H, W)`` (patch ``l`` centred at row
    ``l // W``, column ``l % W``): each score becomes the sum of the scores of the ``size``
    neighbours along the row, each matched with the patch shifted by the same offset; then
    the same along the column. Offsets beyond the border add nothing."""
    batch, radius = scores.shape[0], size // 2
    s = scores.reshape(batch, height, width, height, width)  # (B, patch y, patch x, y, x)
    total = torch.zeros_like(s)
    for d in range(-radius, radius + 1):  # along the row: patch x + d matched at x + d
        lo, hi = max(0, -d), min(width, width - d)
        total[:, :, lo:hi, :, lo:hi] += s[:, :, lo + d : hi + d, :, lo + d : hi + d]
    s, total = total, torch.zeros_like(total)
    for d in range(-radius, radius + 1):  # then along the column
        lo, hi = max(0, -d), min(height, height - d)
        total[:, lo:hi, :, lo:hi] += s[:, lo + d : hi + d, :, lo + d : hi + d]
    return total.reshape(batch, height * width, height, width)


def usable_patches(hole: torch.Tensor, patch: int = 3) -> torch.Tensor:
    """Which ``patch x patch`` patches, one centred on each location of ``hole`` ``(B, 1, H,
    W)``, contain no hole pixel: ``(B, H * W)`` booleans in row-major order. The padding
    outside the map counts as hole, so patches that cross the border are never usable."""
    pad = patch // 2
    touched = F.unfold(F.pad(hole.float(), (pad,) * 4, value=1.0), patch).amax(dim=1)  # (B, L)
    return touched == 0


def contextual_attention(
    foreground: torch.Tensor,
    background: torch.Tensor,
    hole: torch.Tensor,
    patch: int = 3,
    softmax_scale: float = SOFTMAX_SCALE,
    propagation: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill ``foreground`` ``(B, C, H, W)`` with patches of ``background`` (same shape) that
    contain no pixel of ``hole`` ``(B, 1, H, W)`` (1 = hole, at the maps' resolution).

    Returns ``(output (B, C, H, W), attention (B, H * W, H, W))``; ``attention[b, l, y, x]`` is
    the weight location ``(y, x)`` gives to the patch centred at ``(l // W, l % W)``, zero for
    patches that touch the hole or the border. ``propagation``: the neighbourhood of attention
    propagation (1: none). Raises ``ValueError`` if some sample has no patch free of holes.
    """
    batch, channels, height, width = _check_maps(
        foreground, background, hole, "foreground", "background"
    )
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch must be an odd size (3 in the paper), got {patch}.")
    pad = patch // 2
    # Every patch of the background, one per location: (B, L, C * k * k).
    patches = F.unfold(background, patch, padding=pad).transpose(1, 2)
    usable = usable_patches(hole, patch)  # (B, L)
    if not usable.any(dim=1).all():
        raise ValueError("contextual_attention needs at least one patch free of holes per sample.")
    outputs, attentions = [], []
    for b in range(batch):  # each sample has its own patches as filters
        filters = patches[b].reshape(-1, channels, patch, patch)  # (L, C, k, k)
        normalised = filters / filters.flatten(1).norm(dim=1).clamp(min=1e-4).view(-1, 1, 1, 1)
        # Cosine similarity: the foreground's patch at each location is normalised too.
        foreground_norm = F.unfold(foreground[b : b + 1], patch, padding=pad).norm(dim=1)
        scores = F.conv2d(foreground[b : b + 1], normalised, padding=pad)  # (1, L, H, W)
        scores = scores / foreground_norm.clamp(min=1e-4).view(1, 1, height, width)
        if propagation > 1:
            scores = propagate(scores, height, width, propagation)
        logits = softmax_scale * scores.masked_fill(~usable[b].view(1, -1, 1, 1), float("-inf"))
        # Propagated scores span up to 2 * propagation**2 * softmax_scale (180 by default), so
        # many weights would underflow to subnormal floats, which CPUs multiply many times
        # slower: in the pasting convolution, and in the backward pass, where the softmax's
        # gradient is its own output times the incoming gradient. A logit more than CUTOFF
        # below the best match's has a weight under e**-CUTOFF of the best one's: nothing, so
        # it is made -inf, and its weight exactly 0 in both passes.
        best = logits.amax(dim=1, keepdim=True)  # (1, 1, H, W)
        logits = logits.masked_fill(logits < best - CUTOFF, float("-inf"))
        attention = torch.softmax(logits, dim=1)  # (1, L, H, W)
        pasted = F.conv_transpose2d(attention, filters, padding=pad) / patch**2  # (1, C, H, W)
        outputs.append(pasted)
        attentions.append(attention)
    return torch.cat(outputs), torch.cat(attentions)


def shift_connection(
    decoder: torch.Tensor, encoder: torch.Tensor, hole: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift-Net's shift-connection (Yan et al., 2018), a hard, one-pixel cousin of contextual
    attention: every hole location of ``decoder`` ``(B, C, H, W)`` finds the known location
    whose ``encoder`` feature (same shape) is most similar by cosine, and that encoder feature
    is copied ("shifted") into it; known locations get zeros.

    Returns ``(shifted (B, C, H, W), source (B, H, W))``, ``source`` the row-major index of the
    known location each hole location copies from (-1 at known locations). A learned
    PatchMatch inside the network: lesson 02's nearest neighbour search, on features.
    """
    batch, channels, height, width = _check_maps(decoder, encoder, hole, "decoder", "encoder")
    known = hole.flatten(1) == 0  # (B, L)
    if not known.any(dim=1).all():
        raise ValueError("shift_connection needs a known location in every sample.")
    queries = F.normalize(decoder.flatten(2), dim=1)  # (B, C, L)
    keys = F.normalize(encoder.flatten(2), dim=1)  # (B, C, L)
    similarity = torch.einsum("bcq,bck->bqk", queries, keys)  # (B, L queries, L keys)
    similarity = similarity.masked_fill(~known[:, None, :], float("-inf"))
    source = similarity.argmax(dim=2)  # (B, L): the best known key for every location
    shifted = torch.gather(encoder.flatten(2), 2, source[:, None, :].expand(-1, channels, -1))
    in_hole = ~known  # (B, L)
    shifted = shifted * in_hole[:, None, :]
    source = torch.where(in_hole, source, torch.full_like(source, -1))
    return shifted.reshape(batch, channels, height, width), source.reshape(batch, height, width)
