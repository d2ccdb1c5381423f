"""A small masked autoencoder (lesson 06).

The masked autoencoder (MAE) of He et al. (CVPR 2022) learns to inpaint by playing a game
with itself: cut the image into patches, hide most of them at random (75 % by default),
and reconstruct the hidden patches from the visible ones. Two design choices make it work:

- The **encoder sees only the visible patches**: with 75 % hidden it processes a quarter of
  the sequence, so it is several times cheaper than a transformer on the whole image.
- A light **decoder** gets the encoded visible patches back in their places, with **one
  shared learned mask token** at every hidden position, and predicts the pixels of every
  patch. The loss counts only the hidden patches: copying a visible patch teaches nothing.

The pieces, in the order the lesson builds them:

- :func:`patchify` / :func:`unpatchify`: an image ``(B, C, H, W)`` as a sequence of ``L``
  flattened patches ``(B, L, patch * patch * C)`` and back.
- :func:`random_masking`: MAE's masking (uniform noise, ``argsort``, keep the first
  ``int(L * (1 - ratio))``), and :func:`masking_from`, the same with a given mask.
- :func:`sincos_2d_positions`: fixed sine-cosine positional embeddings on the patch grid.
- :func:`loss_from`, :func:`patch_statistics`, :func:`normalize_patches`,
  :func:`unnormalize_patches`: the loss on removed patches, with or without ``norm_pix_loss``.
- :class:`MaskedAutoencoder`: the model, with ``reconstruct`` (the four panels of the paper's
  figures) and ``inpaint`` (a deterministic, hole-driven masking for the evaluation harness).
- :func:`mae_loss`, :func:`mae_optimizer`, :func:`warmup_cosine`: what
  :func:`course_lib.train.train` needs to pre-train it.

Conventions: the patch mask is ``(B, L)`` with **1 = removed** (MAE's convention, and the
course's "1 = hole" for patches); patches are numbered row by row (patch ``l`` sits at grid
row ``l // grid_w``, column ``l % grid_w``); inside a flattened patch the pixels are stored
row by row with the channels last, ``(patch, patch, C)``.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import masks, viz
from course_lib.networks import Configurable
from course_lib.validate import check_image, check_known_pixels, check_mask

__all__ = [
    "CONFIGS",
    "NORM_PIX_EPS",
    "MAELoss",
    "MaskedAutoencoder",
    "block_masking",
    "loss_from",
    "mae_loss",
    "mae_optimizer",
    "masking_from",
    "normalize_patches",
    "patch_mask_to_pixels",
    "patch_statistics",
    "patchify",
    "pixel_mask_to_patches",
    "random_masking",
    "sincos_2d_positions",
    "unnormalize_patches",
    "unpatchify",
    "warmup_cosine",
]

CONFIGS: dict[str, dict[str, int]] = {
    "quick": {
        "image_size": 64,
        "patch": 8,
        "dim": 96,
        "depth": 4,
        "heads": 3,
        "decoder_dim": 64,
        "decoder_depth": 2,
        "decoder_heads": 2,
    },
    "full": {
        "image_size": 64,
        "patch": 8,
        "dim": 192,
        "depth": 6,
        "heads": 3,
        "decoder_dim": 128,
        "decoder_depth": 2,
        "decoder_heads": 4,
    },
}
"""Named models for 64x64 images cut into 8x8 patches (an 8x8 grid, L = 64). ``"quick"``:
a tiny model that pre-trains a few hundred steps on a laptop CPU in about a minute (about
0.58 M parameters). ``"full"``: ViT-Tiny's width (192, 3 heads) at depth 6, for a GPU (about
3.2 M parameters)."""

NORM_PIX_EPS = 1e-6
"""Added to each patch's variance before the square root when ``norm_pix_loss`` standardises
the targets: a flat patch (variance 0) must not be divided by zero."""


# ---------------------------------------------------------------------------------------------
# Images as sequences of patches
# ---------------------------------------------------------------------------------------------


def _check_patch(patch: int) -> None:
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1:
        raise ValueError(
            f"patch must be a positive int (the side of a square patch), got {patch!r}."
        )


def _check_divisible(height: int, width: int, patch: int) -> None:
    """Raise a ValueError that says which side does not divide and how to fix it."""
    _check_patch(patch)
    if height % patch or width % patch:
        divisors = [p for p in range(1, min(height, width) + 1) if height % p == width % p == 0]
        raise ValueError(
            f"image of {height}x{width} is not divisible by patch {patch}: "
            f"{height} % {patch} = {height % patch} and {width} % {patch} = {width % patch}. "
            f"Choose a patch that divides both sides (here one of {divisors}) or crop the "
            f"image to {height - height % patch}x{width - width % patch}."
        )


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut ``images`` ``(B, C, H, W)`` into ``L = (H / patch) * (W / patch)`` patches and
    flatten each: ``(B, L, patch * patch * C)``.

    Patches are numbered row by row; each one is flattened as ``(patch, patch, C)`` (pixel
    rows, pixel columns, channels). ``patch`` must divide H and W, else ``ValueError``.
    """
    if images.dim() != 4:
        raise ValueError(f"patchify expects images (B, C, H, W), got shape {tuple(images.shape)}.")
    batch, channels, height, width = images.shape
    _check_divisible(height, width, patch)
    rows, cols = height // patch, width // patch
    # (B, C, rows, p, cols, p): split each side into (patch index, pixel inside the patch)
    x = images.reshape(batch, channels, rows, patch, cols, patch)
    # (B, rows, cols, p, p, C): grid position first, then the patch's own pixels
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(batch, rows * cols, patch * patch * channels)  # (B, L, p*p*C)


def unpatchify(
    tokens: torch.Tensor, patch: int, height: int, width: int, channels: int = 3
) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(B, L, patch * patch * C)`` back to ``(B, C, H, W)``."""
    _check_divisible(height, width, patch)
    rows, cols = height // patch, width // patch
    expected = (rows * cols, patch * patch * channels)
    if tokens.dim() != 3 or tuple(tokens.shape[1:]) != expected:
        raise ValueError(
            f"unpatchify: tokens of shape {tuple(tokens.shape)} do not make a {height}x{width} "
            f"image with {channels} channels and patch {patch}: expected (B, {expected[0]}, "
            f"{expected[1]})."
        )
    x = tokens.reshape(tokens.shape[0], rows, cols, patch, patch, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, rows, p, cols, p)
    return x.reshape(tokens.shape[0], channels, height, width)


def pixel_mask_to_patches(hole: torch.Tensor, patch: int) -> torch.Tensor:
    """The patch mask ``(B, L)`` of a pixel mask ``(B, 1, H, W)`` (1 = hole): a patch is
    removed (1) when *any* of its pixels is a hole, the maximum over the patch."""
    _check_divisible(hole.shape[-2], hole.shape[-1], patch)
    return F.max_pool2d(hole, kernel_size=patch).flatten(1)  # (B, 1, rows, cols) -> (B, L)


def patch_mask_to_pixels(mask: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """An image-sized map ``(B, 1, H, W)`` of a patch mask ``(B, L)``: each patch's value
    painted over its ``patch x patch`` pixels."""
    pixels = mask.unsqueeze(-1).expand(-1, -1, patch * patch)  # (B, L, p*p): one channel
    return unpatchify(pixels, patch, height, width, channels=1)


# ---------------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------------


def _check_ratio(ratio: float) -> float:
    if isinstance(ratio, torch.Tensor):
        # The usual slip: calling the MAE like the course's inpainting networks.
        raise ValueError(
            f"the mask ratio must be a number in [0, 1), got a tensor of shape "
            f"{tuple(ratio.shape)}. A MaskedAutoencoder is called as model(images, ratio, "
            "generator) and draws its own masks; to fill holes use model.inpaint(image, hole)."
        )
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 <= ratio < 1:
        raise ValueError(
            f"the mask ratio is the fraction of patches removed, a number in [0, 1); got "
            f"{ratio!r}. MAE's default is 0.75; 1 would leave the encoder nothing to see."
        )
    return float(ratio)


def _shuffle_and_keep(
    tokens: torch.Tensor, sort_keys: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort each sample's patches by ``sort_keys`` ``(B, L)`` and keep the first ``keep``.

    Returns ``visible (B, keep, D)``, ``mask (B, L)`` (1 = removed, in the original patch
    order) and ``restore (B, L)``: ``restore[b, l]`` is where patch ``l`` went in the shuffle.
    """
    batch, length, dim = tokens.shape
    # stable: ties (possible in masking_from's 0/1 keys) keep the patches in grid order.
    shuffle = torch.argsort(sort_keys, dim=1, stable=True)  # (B, L): shuffled -> original
    restore = torch.argsort(shuffle, dim=1)  # (B, L): original -> shuffled, the inverse
    kept = shuffle[:, :keep]  # (B, keep): the original indices of the visible patches
    visible = torch.gather(tokens, 1, kept.unsqueeze(-1).expand(-1, -1, dim))  # (B, keep, D)
    # The mask is easy to write in shuffled order (keep zeros, then ones); gathering with
    # restore puts every patch's entry back at its place in the grid. Float32 always: it is
    # mask arithmetic, and it weights the loss.
    shuffled_mask = torch.ones(batch, length, device=tokens.device)
    shuffled_mask[:, :keep] = 0
    mask = torch.gather(shuffled_mask, 1, restore)  # (B, L), 1 = removed
    return visible, mask, restore


def random_masking(
    tokens: torch.Tensor, ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's random masking of ``tokens`` ``(B, L, D)``: remove a fraction ``ratio`` of each
    sample's patches, a different random set per sample.

    Per sample, uniform noise per patch; ``shuffle = argsort(noise)`` is a random order of the
    patches, the first ``keep = int(L * (1 - ratio))`` of it stay visible, and
    ``restore = argsort(shuffle)`` undoes the shuffle (``shuffle.gather(1, restore)`` is
    ``arange(L)``). Returns ``visible (B, keep, D)``, ``mask (B, L)`` with **1 = removed**
    in the original patch order, and ``restore (B, L)``.

    The noise is drawn with ``generator`` (default: torch's global generator) on the
    generator's own device and then moved to the tokens' device, so that a seeded CPU
    generator gives the same masks on every device. ``ratio`` in [0, 1), else ``ValueError``.
    """
    ratio = _check_ratio(ratio)
    if tokens.dim() != 3:
        raise ValueError(f"random_masking expects tokens (B, L, D), got {tuple(tokens.shape)}.")
    batch, length, _ = tokens.shape
    keep = int(length * (1 - ratio))  # rounded down: the paper's rule, same as masks.mae
    where = generator.device if generator is not None else tokens.device
    noise = torch.rand(batch, length, generator=generator, device=where).to(tokens.device)
    return _shuffle_and_keep(tokens, noise, keep)


def masking_from(
    tokens: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`random_masking` with a given ``mask`` ``(B, L)`` (1 = removed) instead of noise.

    Sorting by the mask instead of by noise puts the visible patches first (in grid order),
    so the rest of the recipe is unchanged. Every sample must remove the same number of
    patches (the visible tokens form one ``(B, keep, D)`` tensor); call it per sample
    otherwise. Returns ``visible``, ``mask`` (as float32) and ``restore`` as there.
    """
    if mask.shape != tokens.shape[:2]:
        raise ValueError(
            f"masking_from: the mask must be (B, L) = {tuple(tokens.shape[:2])} like the "
            f"tokens, got {tuple(mask.shape)}."
        )
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("masking_from: the mask must hold only 0 (visible) and 1 (removed).")
    removed = mask.sum(dim=1)
    if (removed != removed[0]).any():
        raise ValueError(
            f"masking_from: every sample must remove the same number of patches, got "
            f"{removed.long().tolist()}; mask the samples one at a time."
        )
    keep = tokens.shape[1] - int(removed[0])
    return _shuffle_and_keep(tokens, mask.float(), keep)


def block_masking(
    tokens: torch.Tensor,
    ratio: float,
    grid: tuple[int, int],
    generator: torch.Generator | None = None,
    min_block: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Block-wise masking (BEiT's, the alternative in the MAE paper's mask-sampling ablation):
    remove rectangles of neighbouring patches instead of patches scattered at random.

    Per sample, rectangles of ``min_block`` or more patches (random area and aspect ratio
    between 1:3 and 3:1, at a random place on the ``grid`` ``(rows, cols)``) are added until
    at least ``int(L * ratio)`` patches are covered; then exactly that many are removed, the
    rectangles' patches first (if the last rectangle overshoots, a random few of its
    patches stay visible). Returns ``visible``, ``mask`` and ``restore`` as
    :func:`random_masking` does, with the same exact count of visible patches.
    """
    ratio = _check_ratio(ratio)
    rows, cols = grid
    batch, length, _ = tokens.shape
    if rows * cols != length:
        raise ValueError(
            f"block_masking: grid {grid} has {rows * cols} patches, the tokens {length}."
        )
    target = length - int(length * (1 - ratio))  # removed patches, as random_masking removes
    where = generator.device if generator is not None else tokens.device

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator, device=where).item()

    covered = torch.zeros(batch, rows, cols)  # 1 = inside a rectangle
    for sample in covered:
        while sample.sum() < target:
            area = uniform(min_block, max(min_block, target - sample.sum().item()))
            aspect = math.exp(uniform(math.log(1 / 3), math.log(3)))
            height = max(1, min(rows, round(math.sqrt(area * aspect))))
            width = max(1, min(cols, round(math.sqrt(area / aspect))))
            top = int(uniform(0, rows - height + 1))
            left = int(uniform(0, cols - width + 1))
            sample[top : top + height, left : left + width] = 1
    # Sort keys: visible patches in [0, 0.5), covered ones in [1, 1.5): the first L - target
    # in sorted order stay visible, so every sample removes exactly `target` patches.
    noise = torch.rand(batch, length, generator=generator, device=where) / 2
    keys = covered.flatten(1).to(where) + noise
    return _shuffle_and_keep(tokens, keys.to(tokens.device), length - target)


# ---------------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------------


def _sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D sine-cosine embedding ``(N, dim)`` of ``positions`` ``(N,)``: ``sin(p * w_i)`` in
    the first half, ``cos(p * w_i)`` in the second, with ``w_i = 1 / 10000^(2i / dim)``."""
    frequencies = 1.0 / 10000 ** (2 * torch.arange(dim // 2, dtype=torch.float64) / dim)
    angles = positions.double().unsqueeze(1) * frequencies  # (N, dim / 2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (N, dim)


def sincos_2d_positions(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positional embeddings ``(grid_h * grid_w, dim)`` (float32).

    The first half of the dimensions embeds the patch's grid row, the second half its grid
    column, each with the 1-D sine-cosine embedding of the original transformer (frequencies
    from 1 down to nearly 1/10000, so that nearby and distant positions are both told apart).
    Rows follow :func:`patchify`'s numbering. ``dim`` must be divisible by 4 (a sine and a
    cosine half for each of the two axes). Nothing here is learned: the same table works for
    any model, and every value is in [-1, 1].
    """
    if dim < 4 or dim % 4:
        raise ValueError(
            f"sincos_2d_positions: dim must be a positive multiple of 4 (sine and cosine for "
            f"rows and for columns), got {dim}."
        )
    if grid_h < 1 or grid_w < 1:
        raise ValueError(f"the patch grid must be at least 1x1, got {grid_h}x{grid_w}.")
    half = dim // 2
    rows = _sincos_1d(torch.arange(grid_h), half)  # (grid_h, dim / 2)
    cols = _sincos_1d(torch.arange(grid_w), half)  # (grid_w, dim / 2)
    table = torch.cat(
        [
            rows.unsqueeze(1).expand(grid_h, grid_w, half),  # same row embedding along a row
            cols.unsqueeze(0).expand(grid_h, grid_w, half),  # same column embedding down it
        ],
        dim=2,
    )  # (grid_h, grid_w, dim)
    return table.reshape(grid_h * grid_w, dim).float()


# ---------------------------------------------------------------------------------------------
# The loss, and the per-patch normalisation of norm_pix_loss
# ---------------------------------------------------------------------------------------------


def patch_statistics(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch's mean and standard deviation over its pixels: ``(B, L, 1)`` each.

    The variance is torch's default (unbiased, as in the paper's code) and the deviation is
    ``sqrt(variance + NORM_PIX_EPS)``, never zero.
    """
    mean = tokens.mean(dim=-1, keepdim=True)
    std = (tokens.var(dim=-1, keepdim=True) + NORM_PIX_EPS).sqrt()
    return mean, std


def normalize_patches(tokens: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Standardise each patch with its statistics: ``(tokens - mean) / std``."""
    return (tokens - mean) / std


def unnormalize_patches(
    tokens: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Undo :func:`normalize_patches`: ``tokens * std + mean``."""
    return tokens * std + mean


def loss_from(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MAE's loss: the mean squared error of each patch (over its pixels), averaged over the
    **removed** patches only, ``(per_patch * mask).sum() / mask.sum()``.

    ``prediction`` and ``target`` are ``(B, L, D)``, ``mask`` is ``(B, L)`` with 1 = removed.
    Visible patches do not count: the decoder could copy them, and that teaches nothing. With
    no removed patch (ratio 0) there is nothing to reconstruct and the loss is 0. Computed in
    float32, also under mixed precision: it is a mean of many small numbers.
    """
    per_patch = ((prediction.float() - target.float()) ** 2).mean(dim=-1)  # (B, L)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.ModuleList:
    """``depth`` pre-norm transformer blocks (``x + attention(norm(x))``, then
    ``x + mlp(norm(x))``), as in ViT; no dropout, as in MAE."""
    return nn.ModuleList(
        nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=heads,
            dim_feedforward=int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        for _ in range(depth)
    )


class MaskedAutoencoder(Configurable):
    """A small masked autoencoder for ``image_size x image_size`` images cut into
    ``patch x patch`` patches (``L = (image_size / patch)^2`` of them).

    Encoder: a linear patch embedding (the same as a convolution with kernel and stride
    ``patch``), plus fixed sine-cosine positions, then ``depth`` pre-norm transformer blocks
    of width ``dim`` with ``heads`` heads and a final layer norm, run **on the visible patches
    only**. Decoder: a linear map to ``decoder_dim``, the shared learned mask token at every
    removed position, fixed sine-cosine positions again (the mask tokens are all equal: the
    positions are the only thing that tells them apart), ``decoder_depth`` blocks and a
    linear head to ``patch * patch * channels`` pixel values per patch.

    There is no class token: the paper's encoder carries one for classification
    fine-tuning; reconstruction does not use it.

    ``mask_ratio`` (default 0.75) is the ratio used when a call does not give one.
    ``norm_pix_loss=True`` makes the target of every patch its standardised pixels (see
    :meth:`targets`), which the paper found gives better representations; the prediction is
    then in those units and needs the true patch statistics to be shown (:meth:`reconstruct`).
    """

    CONFIGS = CONFIGS

    def __init__(
        self,
        image_size: int = 64,
        patch: int = 8,
        channels: int = 3,
        dim: int = 96,
        depth: int = 4,
        heads: int = 3,
        decoder_dim: int = 64,
        decoder_depth: int = 2,
        decoder_heads: int = 2,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = False,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for label, value in (
            ("image_size", image_size),
            ("channels", channels),
            ("depth", depth),
            ("heads", heads),
            ("decoder_depth", decoder_depth),
            ("decoder_heads", decoder_heads),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {label} must be a positive int, got {value!r}.")
        _check_divisible(image_size, image_size, patch)
        for label, width, n_heads in (
            ("dim", dim, heads),
            ("decoder_dim", decoder_dim, decoder_heads),
        ):
            if width % 4 or width % n_heads:
                raise ValueError(
                    f"{name}: {label}={width} must be a multiple of 4 (sine-cosine positions) "
                    f"and of its number of heads ({n_heads})."
                )
        self.mask_ratio = _check_ratio(mask_ratio)
        self.image_size = image_size
        self.patch = patch
        self.channels = channels
        self.norm_pix_loss = norm_pix_loss
        self.grid = image_size // patch
        self.num_patches = self.grid * self.grid
        patch_pixels = patch * patch * channels

        # -- encoder
        self.patch_embed = nn.Linear(patch_pixels, dim)
        # Buffers, not parameters: they move with .to(device) but are not trained. Not in the
        # state dict either (persistent=False): they are recomputed, never loaded.
        self.register_buffer(
            "encoder_positions",
            sincos_2d_positions(self.grid, self.grid, dim).unsqueeze(0),  # (1, L, dim)
            persistent=False,
        )
        self.encoder_blocks = _blocks(dim, depth, heads, mlp_ratio)
        # Pre-norm blocks leave their output un-normalised: one last norm.
        self.encoder_norm = nn.LayerNorm(dim)

        # -- decoder
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer(
            "decoder_positions",
            sincos_2d_positions(self.grid, self.grid, decoder_dim).unsqueeze(0),  # (1, L, d)
            persistent=False,
        )
        self.decoder_blocks = _blocks(decoder_dim, decoder_depth, decoder_heads, mlp_ratio)
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.head = nn.Linear(decoder_dim, patch_pixels)
        self._initialise()

    def _initialise(self) -> None:
        """MAE's initialisation: Xavier-uniform linear weights and zero biases (the
        transformers are trained from scratch, and this keeps early activations of the
        same scale in every layer), and a small random mask token."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.mask_token, std=0.02)

    # -- the pieces ----------------------------------------------------------------------------

    def _check_images(self, images: torch.Tensor) -> None:
        check_image(images, name="images", channels=self.channels)
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"this {type(self).__name__} was built for {self.image_size}x{self.image_size} "
                f"images (its positions cover a {self.grid}x{self.grid} grid of {self.patch}-"
                f"pixel patches), got {images.shape[-2]}x{images.shape[-1]}; resize or crop "
                f"the images, or build a model with image_size={images.shape[-1]}."
            )

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """What the decoder must predict for every patch, ``(B, L, patch * patch * C)``: the
        pixels, or with ``norm_pix_loss`` the pixels standardised by the patch's own mean
        and deviation (:func:`patch_statistics`), which takes away each patch's brightness
        and contrast and leaves its structure."""
        tokens = patchify(images, self.patch)
        if not self.norm_pix_loss:
            return tokens
        return normalize_patches(tokens, *patch_statistics(tokens))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Every patch embedded, with its position added: ``(B, L, dim)``.

        The positions are added *before* masking so that each visible token carries its
        place in the grid into the encoder.
        """
        return self.patch_embed(patchify(images, self.patch)) + self.encoder_positions

    def encode_visible(self, visible: torch.Tensor) -> torch.Tensor:
        """The encoder's blocks on the visible tokens ``(B, keep, dim)``: ``(B, keep, dim)``."""
        for block in self.encoder_blocks:
            visible = block(visible)
        return self.encoder_norm(visible)

    def encode(
        self,
        images: torch.Tensor,
        ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed, mask at random, and encode the visible patches only.

        Returns ``latent (B, keep, dim)``, ``mask (B, L)`` (1 = removed) and ``restore
        (B, L)``, see :func:`random_masking`. The encoder's cost grows with ``keep``, not
        ``L``: this is MAE's compute saving.
        """
        ratio = self.mask_ratio if ratio is None else ratio
        visible, mask, restore = random_masking(self.embed(images), ratio, generator)
        return self.encode_visible(visible), mask, restore

    def decode(self, latent: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch's pixels from the encoded visible patches.

        ``latent`` ``(B, keep, dim)`` in shuffled order, ``restore`` ``(B, L)`` from the
        masking. Returns ``(B, L, patch * patch * C)`` in grid order: pixel values (or
        standardised ones with ``norm_pix_loss``).
        """
        x = self.decoder_embed(latent)  # (B, keep, d)
        batch, keep, width = x.shape
        length = restore.shape[1]
        # In shuffled order the visible patches come first: append one copy of the shared
        # mask token per removed patch, then gather with restore to put all L in grid order.
        fill = self.mask_token.to(x.dtype).expand(batch, length - keep, width)  # (B, L-keep, d)
        x = torch.cat([x, fill], dim=1)  # (B, L, d), shuffled order
        x = torch.gather(x, 1, restore.unsqueeze(-1).expand(-1, -1, width))  # (B, L, d)
        x = x + self.decoder_positions
        for block in self.decoder_blocks:
            x = block(x)
        return self.head(self.decoder_norm(x))  # (B, L, p*p*C)

    # -- pre-training --------------------------------------------------------------------------

    def forward(
        self,
        images: torch.Tensor,
        ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One MAE step on ``images`` ``(B, C, H, W)`` in [0, 1].

        Masks a fraction ``ratio`` (default: the model's ``mask_ratio``) of each image's
        patches at random with ``generator``, encodes the visible ones and decodes all.
        Returns ``loss`` (a scalar, :func:`loss_from` on the removed patches),
        ``prediction (B, L, patch * patch * C)`` and ``mask (B, L)`` (1 = removed).
        """
        self._check_images(images)
        latent, mask, restore = self.encode(images, ratio, generator)
        prediction = self.decode(latent, restore)
        return loss_from(prediction, self.targets(images), mask), prediction, mask

    @torch.no_grad()
    def reconstruct(
        self,
        images: torch.Tensor,
        ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The panels of the paper's figures, for display: ``"original"``, ``"masked"``
        (removed patches drawn as the course's hole pattern, :func:`course_lib.viz.masked_input`),
        ``"reconstruction"`` (every patch as predicted),
        ``"pasted"`` (the reconstruction with the visible patches pasted back), each
        ``(B, C, H, W)`` clamped to [0, 1], and ``"mask"`` ``(B, 1, H, W)`` (1 = removed).

        With ``norm_pix_loss`` the model predicts *standardised* patches: their mean and
        deviation were removed from the target, so the prediction alone says nothing about a
        patch's brightness or contrast. To show it, each predicted patch is un-normalised
        with the mean and deviation of the **true** patch, information the model never saw
        for removed patches; such a picture shows the structure the model predicted, not
        what it could inpaint on its own (:meth:`inpaint` therefore refuses those models).
        """
        self._check_images(images)
        _, prediction, mask = self(images, ratio, generator)
        if self.norm_pix_loss:
            truth = patchify(images, self.patch)  # (B, L, p*p*C)
            prediction = unnormalize_patches(prediction, *patch_statistics(truth))
        size = self.image_size
        reconstruction = unpatchify(prediction, self.patch, size, size, self.channels)
        reconstruction = reconstruction.clamp(0, 1).to(images.dtype)
        removed = patch_mask_to_pixels(mask, self.patch, size, size)  # (B, 1, H, W)
        return {
            "original": images,
            "masked": viz.masked_input(images, removed),
            "reconstruction": reconstruction,
            "pasted": masks.composite(images, removed, reconstruction),
            "mask": removed,
        }

    # -- inpainting ----------------------------------------------------------------------------

    @torch.no_grad()
    def inpaint(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The composite ``hole * prediction + (1 - hole) * image`` for the evaluation
        harness (``fill(image, hole)`` of :mod:`course_lib.evaluate`).

        The masking is deterministic and driven by the hole: every patch with at least one
        hole pixel is removed (max-pooling the hole over each patch), all others are visible.
        The number of visible patches then differs between images, so the images go through
        the encoder one at a time (:func:`masking_from`). Hole pixels only ever sit in
        removed patches, which the encoder never sees: they cannot influence the answer.

        Needs a model trained with ``norm_pix_loss=False``: a norm-pix model predicts
        standardised patches, and a removed patch's true mean and deviation are unknown. A
        sample whose mask is all hole raises ``ValueError``. Runs without gradients; the model
        has no dropout or batch norm, so train and eval mode give the same answer (up to
        rounding: eval mode takes PyTorch's fused transformer path).
        """
        if self.norm_pix_loss:
            raise ValueError(
                "inpaint needs a model trained with norm_pix_loss=False: with norm_pix_loss the "
                "model predicts each patch up to its mean and deviation, and for a removed "
                "patch those are exactly what is unknown. Train a pixel-target model for "
                "inpainting (MaskedAutoencoder(..., norm_pix_loss=False))."
            )
        self._check_images(image)
        check_mask(hole, like=image)
        check_known_pixels(hole)  # no visible patch: nothing to inpaint from
        removed = pixel_mask_to_patches(hole, self.patch)  # (B, L), 1 = removed
        tokens = self.embed(image)  # (B, L, dim)
        predictions = []
        for one_tokens, one_removed in zip(tokens.split(1), removed.split(1), strict=True):
            visible, _, restore = masking_from(one_tokens, one_removed)  # (1, keep_b, dim)
            predictions.append(self.decode(self.encode_visible(visible), restore))
        prediction = torch.cat(predictions)  # (B, L, p*p*C)
        size = self.image_size
        prediction = unpatchify(prediction, self.patch, size, size, self.channels).clamp(0, 1)
        return masks.composite(image, hole, prediction.to(image.dtype))


# ---------------------------------------------------------------------------------------------
# Pre-training with course_lib.train
# ---------------------------------------------------------------------------------------------


def mae_loss(
    model: MaskedAutoencoder, image: torch.Tensor, hole: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss for :func:`course_lib.train.train`: MAE draws its own random masks, so the
    batch's ``hole`` is ignored. Returns the loss and ``{"mse_removed": loss}``."""
    del hole  # MAE's masks come from random_masking, with torch's (seeded) global generator
    loss, _, _ = model(image)
    return loss, {"mse_removed": loss.item()}


class MAELoss(nn.Module):
    """:func:`mae_loss` with a choice of masks (lesson 06: masks that match the use).

    ``masking``:

    - ``"random"``: MAE's own, :func:`random_masking`;
    - ``"block"``: rectangles of patches, :func:`block_masking` (the paper's ablation);
    - ``"holes"``: the batch's own pixel holes, made patch masks the way ``inpaint`` makes
      them (every patch a hole touches is removed, :func:`pixel_mask_to_patches`), so that
      the model is pre-trained on the masks it will later inpaint. The counts differ between
      images, so each image goes through the encoder on its own, as in ``inpaint``; an image
      whose hole touches every patch keeps its least-covered patch visible.

    ``ratio`` (random and block masks): a number, or a range ``(low, high)`` from which each
    batch draws its ratio uniformly; ``None`` is the model's ``mask_ratio``. The loss is the
    mean squared error over all removed patches of the batch, as :func:`loss_from`.
    """

    MASKINGS = ("random", "block", "holes")

    def __init__(
        self, masking: str = "random", ratio: float | tuple[float, float] | None = None
    ) -> None:
        super().__init__()
        if masking not in self.MASKINGS:
            raise ValueError(f"masking must be one of {self.MASKINGS}, got {masking!r}.")
        if isinstance(ratio, (tuple, list)):
            if len(ratio) != 2 or not _check_ratio(ratio[0]) <= _check_ratio(ratio[1]):
                raise ValueError(f"a ratio range is (low, high) with low <= high, got {ratio!r}.")
            ratio = (float(ratio[0]), float(ratio[1]))
        elif ratio is not None:
            ratio = _check_ratio(ratio)
        if masking == "holes" and ratio is not None:
            raise ValueError("masking='holes' takes its ratio from each hole: leave ratio=None.")
        self.masking, self.ratio = masking, ratio

    def extra_repr(self) -> str:
        return f"masking={self.masking!r}, ratio={self.ratio!r}"

    def _batch_ratio(self, model: MaskedAutoencoder) -> float:
        if self.ratio is None:
            return model.mask_ratio
        if isinstance(self.ratio, tuple):  # torch's global generator, seeded by the trainer
            low, high = self.ratio
            return low + (high - low) * torch.rand(()).item()
        return self.ratio

    def forward(
        self, model: MaskedAutoencoder, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        model._check_images(image)
        tokens = model.embed(image)  # (B, L, dim)
        targets = model.targets(image)  # (B, L, p*p*C)
        if self.masking == "holes":
            parts = [
                self._one_image(model, one_tokens, one_targets, one_hole)
                for one_tokens, one_targets, one_hole in zip(
                    tokens.split(1), targets.split(1), hole.split(1), strict=True
                )
            ]  # (squared error summed over the removed patches, their count) per image
            loss = sum(total for total, _ in parts) / sum(count for _, count in parts)
        else:
            ratio = self._batch_ratio(model)
            if self.masking == "random":
                visible, mask, restore = random_masking(tokens, ratio)
            else:
                visible, mask, restore = block_masking(tokens, ratio, (model.grid, model.grid))
            prediction = model.decode(model.encode_visible(visible), restore)
            loss = loss_from(prediction, targets, mask)
        return loss, {"mse_removed": loss.item()}

    @staticmethod
    def _one_image(
        model: MaskedAutoencoder, tokens: torch.Tensor, targets: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        removed = pixel_mask_to_patches(hole, model.patch)  # (1, L), as inpaint removes them
        if bool(removed.all()):  # keep the patch with the smallest share of hole visible
            covered = F.avg_pool2d(hole, kernel_size=model.patch).flatten(1)  # (1, L)
            removed[0, covered[0].argmin()] = 0
        visible, mask, restore = masking_from(tokens, removed)
        prediction = model.decode(model.encode_visible(visible), restore)
        count = int(mask.sum())
        return loss_from(prediction, targets, mask) * count, count


def mae_optimizer(model: nn.Module, batch_size: int, base_lr: float = 1.5e-4) -> torch.optim.AdamW:
    """MAE's optimiser: AdamW, betas (0.9, 0.95), weight decay 0.05, and the linear scaling
    rule ``lr = base_lr * batch_size / 256``.

    Biases, layer norms and the mask token are not decayed: pulling them towards zero only
    shifts or rescales features (and the mask token, which has no input, would drift to 0).
    The fixed positions are buffers and not optimised at all.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or name.endswith("mask_token"):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": 0.05},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=base_lr * batch_size / 256, betas=(0.9, 0.95))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` steps, then cosine decay to 0 at ``total_steps``.

    Step ``s`` (counted from 0) runs at ``lr * (s + 1) / warmup_steps`` during the warm-up
    (no wasted step at learning rate 0), then at ``lr * (1 + cos(pi * t)) / 2`` with ``t``
    going from 0 to 1 over the remaining steps. The warm-up matters for transformers: Adam's
    first steps, with poor estimates of the gradient's scale, would otherwise be too large.
    Step it once per optimiser step (:func:`course_lib.train.train` does).
    """
    for label, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{label} must be a non-negative int, got {value!r}.")
    if total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got "
            f"warmup_steps={warmup_steps}, total_steps={total_steps}."
        )

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
