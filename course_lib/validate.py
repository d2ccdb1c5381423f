"""Input checks shared by every module (lesson 00 conventions).

Images are float32 tensors ``(B, C, H, W)`` in ``[0, 1]``; masks are float32 tensors
``(B, 1, H, W)`` holding exactly 0 or 1, with **1 = hole**. Each check raises ``ValueError``
with a message that says what was wrong, what was expected and how to fix it.

One helper per idea, so that every module words the same mistake the same way:

* tensors: :func:`check_image`, :func:`check_mask`, :func:`check_known_pixels` (a mask
  that is all hole leaves nothing to inpaint from);
* numbers and names: :func:`check_int`, :func:`check_number` (finite, within bounds),
  :func:`check_choice` (one of a few names), :func:`check_coverage`, :func:`check_size`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection

import numpy as np
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
    _check_has_pixels(image, name)
    if image.numel() and (
        image.min() < -RANGE_TOLERANCE or image.max() > 1 + RANGE_TOLERANCE or image.isnan().any()
    ):
        raise ValueError(
            f"{name} values must lie in [0, 1], got min {image.min().item():.4g} and max "
            f"{image.max().item():.4g}; undo any normalisation (x * std + mean) and clamp(0, 1)."
        )


def _check_has_pixels(tensor: torch.Tensor, name: str) -> None:
    """Refuse a ``(B, C, H, W)`` tensor without pixels: its means would be 0 / 0 = nan."""
    if 0 in tensor.shape[1:]:
        raise ValueError(
            f"{name} of shape {tuple(tensor.shape)} has no pixels (a channel, height or width "
            "of 0), so nothing can be measured on it; check the crop or resize that made it."
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
    _check_has_pixels(mask, name)
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
        check_int(value, label)
        if value < minimum:
            raise ValueError(
                f"{label} must be at least {minimum} pixels, got {value}; "
                f"use images of {minimum}x{minimum} or larger."
            )


def check_known_pixels(hole: torch.Tensor, name: str = "hole") -> None:
    """Check a mask (:func:`check_mask`) and refuse it if some sample is all hole.

    With no known pixel there is nothing to inpaint from: a network would only return what
    its biases make of an empty input (a black or grey picture), so every inpainting method
    refuses instead.
    """
    check_mask(hole, name=name)
    all_hole = (hole.flatten(1) == 1).all(dim=1)  # (B,)
    if all_hole.any():
        index = int(all_hole.nonzero()[0])
        raise ValueError(
            f"the mask of sample {index} is all hole: there is nothing to inpaint from. "
            "Leave some pixels known (hole = 0) or drop that sample."
        )


def _with_hint(message: str, hint: str) -> str:
    """``message`` followed by ``hint`` (how to fix it), when there is one."""
    return f"{message} {hint}" if hint else message


def check_int(
    value: object,
    name: str,
    minimum: int | None = None,
    maximum: int | None = None,
    hint: str = "",
) -> int:
    """Check a whole number (numpy integers too, never ``bool``) in ``[minimum, maximum]``
    (``None``: no bound); return it as an ``int``. ``hint`` says how to fix a bad value."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ValueError(_with_hint(f"{name} must be an int, got {value!r}.", hint))
    if minimum is not None and value < minimum:
        upper = "" if maximum is None else f" and at most {maximum}"
        raise ValueError(
            _with_hint(f"{name} must be at least {minimum}{upper}, got {value}.", hint)
        )
    if maximum is not None and value > maximum:
        lower = "" if minimum is None else f"at least {minimum} and "
        raise ValueError(_with_hint(f"{name} must be {lower}at most {maximum}, got {value}.", hint))
    return int(value)


def check_number(
    value: object,
    name: str,
    minimum: float | None = None,
    below: float | None = None,
    hint: str = "",
) -> float:
    """Check a finite real number with ``minimum <= value < below`` (``None``: no bound);
    return it as a ``float``. NaN and infinities are refused: they would silently turn every
    comparison or update they meet into nonsense."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            _with_hint(f"{name} must be a number, got {value!r} ({type(value).__name__}).", hint)
        )
    number = float(value)
    too_low = minimum is not None and number < minimum
    too_high = below is not None and number >= below
    if not math.isfinite(number) or too_low or too_high:
        if minimum is not None and below is not None:
            expected = f"a finite number in [{minimum:g}, {below:g})"
        elif minimum is not None:
            expected = f"a finite number of at least {minimum:g}"
        elif below is not None:
            expected = f"a finite number below {below:g}"
        else:
            expected = "a finite number"
        raise ValueError(_with_hint(f"{name} must be {expected}, got {value!r}.", hint))
    return number


def check_choice(value: object, name: str, choices: Collection, hint: str = "") -> object:
    """Check that ``value`` is one of ``choices``; return it.

    Unhashable values (a list where one name was meant) get this error too, not the
    ``TypeError: unhashable type`` that looking them up in a dict or set would raise.
    """
    try:
        known = value in choices
    except TypeError:  # an unhashable value looked up in a dict or set
        known = False
    if not known:
        given = repr(value)
        if not isinstance(value, str) and all(isinstance(choice, str) for choice in choices):
            given += f" (a {type(value).__name__}; pass one name as a str)"
        raise ValueError(
            _with_hint(f"unknown {name} {given}; expected one of {tuple(choices)}.", hint)
        )
    return value
