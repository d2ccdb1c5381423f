"""Conversions between the course's tensors and numpy arrays / PIL images (lesson 00).

This is the one place where layouts change: tensors are ``(B, C, H, W)`` or ``(C, H, W)``
float32 in ``[0, 1]``; numpy images are ``(H, W, C)`` (or ``(H, W)`` for grey and masks).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def numpy_to_image(array: np.ndarray) -> torch.Tensor:
    """``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8/float array -> ``(3, H, W)`` float32.

    uint8 values are divided by 255; grey images are repeated to 3 channels; an alpha channel
    is dropped.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}."
        )
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"float image arrays must lie in [0, 1], got [{values.min():.4g}, "
                f"{values.max():.4g}]; divide 0-255 values by 255 first."
            )
    else:
        raise ValueError(f"unsupported image dtype {array.dtype}; use uint8 or float in [0, 1].")
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))  # (3, H, W)


def image_to_numpy(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` or ``(B, C, H, W)`` tensor -> ``(H, W, C)`` or ``(B, H, W, C)`` float32.

    Single-channel tensors (masks) come back as ``(H, W)`` or ``(B, H, W)``.
    """
    values = image.detach().float().cpu()
    if values.dim() == 3:
        values = values.permute(1, 2, 0)  # (H, W, C)
    elif values.dim() == 4:
        values = values.permute(0, 2, 3, 1)  # (B, H, W, C)
    else:
        raise ValueError(f"expected (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}.")
    array = values.numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float array in ``[0, 1]`` -> uint8 in ``[0, 255]`` (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(array, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def pil_to_image(picture: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> ``(3, H, W)`` float32 in ``[0, 1]``."""
    return numpy_to_image(np.asarray(picture.convert("RGB")))


def image_to_pil(image: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` or ``(1, 3, H, W)`` tensor in ``[0, 1]`` -> RGB PIL image."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"image_to_pil takes one image, got a batch of {image.shape[0]}.")
        image = image[0]
    return Image.fromarray(to_uint8(image_to_numpy(image)))
