"""Input checks shared by every module (lesson 00 conventions).

Images are float32 tensors ``(B, C, H, W)`` in ``[0, 1]``; masks are float32 tensors
``(B, 1, H, W)`` holding exactly 0 or 1, with **1 = hole**. Each check raises ``ValueError``
with a message that says what was wrong, what was expected and how to fix it.
"""

from __future__ import annotations

import torch

# Values within this distance of [0, 1] are accepted as rounding noise (e.g. after a resize).
RANGE_TOLERANCE = 1e-4


def check_image(image: torch.Tensor, name: str = "image", channels: int | None = 3) -> None:
    """Check that ``image`` is a float tensor ``(B, C, H, W)`` with values in ``[0, 1]``."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(image).__name__}; "
            "convert numpy arrays or PIL images with course_lib.convert."
        )
    if image.dim() != 4:
        raise ValueError(
            f"{name} must have shape (B, C, H, W), got {tuple(image.shape)}; "
            "add a batch dimension with image.unsqueeze(0) for a single image."
        )
    if channels is not None and image.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels (B, {channels}, H, W), got {tuple(image.shape)}."
        )
    if not image.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor in [0, 1], got dtype {image.dtype}; "
            "for uint8 pixels use course_lib.convert.numpy_to_image or divide by 255."
        )
    if image.numel() and (
        image.min() < -RANGE_TOLERANCE or image.max() > 1 + RANGE_TOLERANCE or image.isnan().any()
    ):
        raise ValueError(
            f"{name} values must lie in [0, 1], got min {image.min().item():.4g} and max "
            f"{image.max().item():.4g}; undo any normalisation (x * std + mean) and clamp(0, 1)."
        )


def check_mask(mask: torch.Tensor, name: str = "hole", like: torch.Tensor | None = None) -> None:
    """Check that ``mask`` is a binary float tensor ``(B, 1, H, W)`` (1 = hole).

    With ``like`` (an image), the batch size and spatial size must match it.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape (B, 1, H, W), got {type(mask).__name__}."
        )
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape (B, 1, H, W), got {tuple(mask.shape)}; "
            "a (B, H, W) mask becomes (B, 1, H, W) with mask.unsqueeze(1)."
        )
    if not mask.is_floating_point():
        raise ValueError(
            f"{name} must be float32 with values 0 or 1, got dtype {mask.dtype}; use mask.float()."
        )
    if mask.numel() and not ((mask == 0) | (mask == 1)).all():
        raise ValueError(
            f"{name} must be binary (exactly 0 or 1, 1 = hole), but it holds other values; "
            "threshold it explicitly, e.g. (mask > 0.5).float()."
        )
    if like is not None:
        if mask.shape[0] != like.shape[0] or mask.shape[-2:] != like.shape[-2:]:
            raise ValueError(
                f"{name} of shape {tuple(mask.shape)} does not match the image of shape "
                f"{tuple(like.shape)}: expected ({like.shape[0]}, 1, {like.shape[-2]}, "
                f"{like.shape[-1]})."
            )


def check_coverage(coverage: float, name: str = "coverage") -> float:
    """Check a hole fraction: a number in ``[0, 1)``; return it as a float."""
    try:
        value = float(coverage)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a number in [0, 1), got {coverage!r}.") from error
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name} must be in [0, 1) (the fraction of pixels that are holes), got {value}; "
            "1.0 would hide the whole image and leave nothing to inpaint from."
        )
    return value


def check_size(height: int, width: int, minimum: int = 8) -> None:
    """Check an image size: whole numbers of at least ``minimum`` pixels."""
    for label, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{label} must be an int, got {value!r}.")
        if value < minimum:
            raise ValueError(
                f"{label} must be at least {minimum} pixels, got {value}; "
                f"use images of {minimum}x{minimum} or larger."
            )
