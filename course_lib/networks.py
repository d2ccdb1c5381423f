"""What the course's networks share (lessons 03, 05, 06 and 08).

:class:`Configurable`: a network built by name from its module's table of configurations
(``PConvUNet.from_config("small")``), and its parameter count. :class:`InpaintingNetwork`
adds :meth:`~InpaintingNetwork.inpaint`, the composite every network hands to the evaluation
harness: the known pixels exactly, the network's guess in the hole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from course_lib import masks
from course_lib.validate import check_known_pixels

__all__ = ["Configurable", "InpaintingNetwork"]


class Configurable(nn.Module):
    """A network with named configurations: a subclass sets ``CONFIGS``, each name mapped to
    the constructor's arguments."""

    CONFIGS: ClassVar[Mapping[str, Mapping[str, object]]] = {}

    @classmethod
    def from_config(cls, name: str, **overrides: object) -> Configurable:
        """The network named ``name`` in ``CONFIGS``; ``overrides`` replace its arguments
        (e.g. ``in_channels=1``)."""
        if name not in cls.CONFIGS:
            raise ValueError(
                f"unknown configuration {name!r}; choose one of {sorted(cls.CONFIGS)}."
            )
        return cls(**{**cls.CONFIGS[name], **overrides})

    def parameter_count(self) -> int:
        """Number of trainable numbers in the network (buffers, such as fixed positional
        embeddings or batch-norm statistics, are not counted)."""
        return sum(parameter.numel() for parameter in self.parameters())


class InpaintingNetwork(Configurable):
    """A network whose ``forward(image, hole)`` predicts every pixel ``(B, 3, H, W)`` from the
    known ones (``hole`` ``(B, 1, H, W)``, 1 = hole)."""

    @torch.no_grad()
    def inpaint(
        self, image: torch.Tensor, hole: torch.Tensor, *guidance: torch.Tensor
    ) -> torch.Tensor:
        """The composite ``hole * prediction + (1 - hole) * image``, prediction clamped to
        [0, 1]: the known pixels exactly, the network's guess in the holes.

        Fits ``fill(image, hole)`` of :mod:`course_lib.evaluate`. ``guidance``: what a
        network's ``forward`` takes after the hole, if anything (lesson 09's edge maps). Runs
        without gradients and in the network's current mode: call ``model.eval()`` first. A
        sample whose mask is all hole raises ``ValueError``: there is nothing to inpaint from.
        """
        check_known_pixels(hole)
        prediction = self(image, hole, *guidance).clamp(0, 1)
        return masks.composite(image, hole, prediction.to(image.dtype))
