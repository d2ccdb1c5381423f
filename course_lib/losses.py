"""Losses for learned inpainting (lesson 04; the adversarial terms return in lesson 05).

An L1 loss alone teaches a network to predict the *average* of all plausible fillings: a
blur. The partial-convolution paper adds terms that judge the result the way a viewer does:

    L_total = L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv

* :func:`hole_l1`, :func:`valid_l1`: L1 error inside and outside the hole.
* :func:`perceptual_loss`: distance between the feature maps of a frozen network
  (:mod:`course_lib.feature_nets`) of the output, the composite and the truth.
* :func:`style_loss` with :func:`gram_matrix`: distance between feature *statistics* (which
  channels fire together), blind to where things are; it asks for the right texture.
* :func:`total_variation`: smoothness of the composite across the hole's border.
* :class:`PConvLoss`: all of them with the paper's weights (:data:`PAPER_WEIGHTS`, tuned for
  VGG-16) or the course's (:data:`COURSE_WEIGHTS`, re-balanced for the course's own feature
  network), as a training loss for :func:`course_lib.train.train`.

LaMa keeps an L1 term and a perceptual term (with a network that sees far) and adds an
adversary:

* :class:`~course_lib.discriminator.PatchDiscriminator`, re-exported here: one logit per patch.
* :func:`nonsaturating_d_loss`, :func:`nonsaturating_g_loss` (LaMa) and :func:`hinge_d_loss`,
  :func:`hinge_g_loss` (SN-PatchGAN of DeepFill v2), all told by :func:`downsample_hole`
  which patches of a fake are made up.
* :func:`r1_penalty`: keeps the discriminator's gradient small on real images.
* :func:`feature_matching_loss`: the fake's discriminator features should look like the real's.
* :class:`HighReceptiveFieldPerceptual`: a perceptual loss through a network that sees far.
* :class:`AdversarialLoss`: any of the training losses above plus an adversary's judgement,
  and the adversary's own loss (lesson 04's ablation); the trainer steps both networks.
* :class:`LaMaLoss`: LaMa's whole training loss with its weights (:data:`LAMA_WEIGHTS`),
  trained in lesson 05.

Conventions: images ``(B, C, H, W)``, masks ``(B, 1, H, W)`` with **1 = hole**; ``output`` is
the network's raw prediction (it may leave ``[0, 1]``), ``composite = hole * output + (1 -
hole) * target``. Every function returns a float32 scalar tensor (a mean), also under mixed
precision: inputs are converted with ``.float()`` and the one matrix product (the Gram
matrix) runs with autocast switched off. Feature networks run in the caller's precision,
their maps are converted to float32. The weights of the terms are applied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import masks, recipes
from course_lib.discriminator import PatchDiscriminator
from course_lib.feature_nets import course_features, vgg16_features
from course_lib.validate import check_mask, check_number

__all__ = [
    "COURSE_WEIGHTS",
    "EdgeAdversarialLoss",
    "LOSS_BUILDERS",
    "PAPER_WEIGHTS",
    "AdversarialLoss",
    "HOLE_MAP_MODES",
    "HighReceptiveFieldPerceptual",
    "LAMA_WEIGHTS",
    "LaMaLoss",
    "PConvLoss",
    "WEIGHT_OF",
    "PatchDiscriminator",
    "downsample_hole",
    "extract_features",
    "feature_matching_loss",
    "gram_matrix",
    "hinge_d_loss",
    "hinge_g_loss",
    "GlobalLocalAdversarialLoss",
    "HoleL2Loss",
    "hole_l1",
    "hole_l2",
    "nonsaturating_d_loss",
    "nonsaturating_g_loss",
    "perceptual_distance",
    "perceptual_loss",
    "r1_penalty",
    "spatially_discounted_l1",
    "style_distance",
    "style_loss",
    "total_variation",
    "valid_l1",
]

FeatureNetwork = Callable[[torch.Tensor], Sequence[torch.Tensor]]
Maps = Sequence[torch.Tensor]

# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _check_tensor(name: str, tensor: object, channels: int | None = None) -> None:
    """A floating-point tensor ``(B, C, H, W)`` (with ``channels`` channels if given)."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must be a tensor (B, C, H, W), got {shape}.")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {tensor.dtype}.")
    if channels is not None and tensor.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got {tuple(tensor.shape)}.")


def _check_pair(first: str, a: torch.Tensor, second: str, b: torch.Tensor) -> None:
    """Two float tensors ``(B, C, H, W)`` of the same shape."""
    _check_tensor(first, a)
    _check_tensor(second, b)
    if a.shape != b.shape:
        raise ValueError(
            f"{first} {tuple(a.shape)} and {second} {tuple(b.shape)} must have the same shape."
        )


def _check_hole(hole: torch.Tensor, image: torch.Tensor) -> None:
    """A binary mask ``(B, 1, H, W)`` (1 = hole) matching ``image``."""
    check_mask(hole, name="hole", like=image)


# ---------------------------------------------------------------------------------------------
# Pixel losses
# ---------------------------------------------------------------------------------------------


def hole_l1(output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``L_hole = mean(|hole * (output - target)|)``, the mean over all ``B*C*H*W`` elements.

    Divided by the size of the image, not of the hole (as in the paper): a small hole gives a
    small ``L_hole``, and ``hole_l1 + valid_l1`` is the plain L1 error of the whole image.
    """
    _check_pair("output", output, "target", target)
    _check_hole(hole, output)
    error = (output.float() - target.float()).abs()  # (B, C, H, W)
    return (hole.float() * error).mean()  # hole (B, 1, H, W) broadcasts over the channels


def valid_l1(output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``L_valid = mean(|(1 - hole) * (output - target)|)``, over all ``B*C*H*W`` elements.

    The error on the known pixels. The composite replaces them anyway, but without this
    term the raw output drifts there, and the perceptual and style terms see the raw output.
    """
    _check_pair("output", output, "target", target)
    _check_hole(hole, output)
    error = (output.float() - target.float()).abs()  # (B, C, H, W)
    return ((1 - hole.float()) * error).mean()


def hole_l2(output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The Context Encoder's reconstruction loss (lesson 08): the mean squared error over the
    hole's elements only, ``sum(hole * (output - target)**2) / (C * sum(hole))``.

    Divided by the size of the hole, as the Context Encoder's code does (its error is taken on
    the cut-out region alone), unlike :func:`hole_l1`: the weights 0.999 and 0.001 of its
    reconstruction and adversarial terms assume this scale.
    """
    _check_pair("output", output, "target", target)
    _check_hole(hole, output)
    hole = hole.float()  # (B, 1, H, W)
    if not hole.any():
        raise ValueError("hole_l2 needs at least one hole pixel; every mask given is empty.")
    error = (output.float() - target.float()).pow(2)  # (B, C, H, W)
    return (hole * error).sum() / (hole.sum() * output.shape[1])


def spatially_discounted_l1(
    output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, gamma: float = 0.99
) -> torch.Tensor:
    """DeepFill v1's reconstruction loss (lesson 08): the L1 error of each hole pixel weighted
    by ``gamma ** d``, ``d`` its distance to the nearest known pixel (the chessboard distance of
    :func:`course_lib.mpe.masking_positional_encoding`), a mean over all ``C*H*W`` elements.

    Deep inside a wide hole many answers are plausible, so an exact-pixel penalty there mostly
    teaches the average; near the border the context decides. The discount (0.99 in the
    paper) trusts the reconstruction less the further a pixel is from what is known.
    """
    from course_lib.mpe import masking_positional_encoding

    _check_pair("output", output, "target", target)
    _check_hole(hole, output)
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}.")
    distance, _, _ = masking_positional_encoding(hole)  # (B, H, W), 0 at known pixels
    weight = hole.float() * gamma ** distance[:, None].float()  # (B, 1, H, W)
    return (weight * (output.float() - target.float()).abs()).mean()


def total_variation(composite: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Smoothness penalty on the composite around the hole.

    ``P`` is the hole grown by one pixel in all 8 directions
    (``masks.dilate(hole, 1, "square")``); for every pair of horizontal or vertical
    neighbours that both lie in ``P``, add ``|x[i, j+1] - x[i, j]|`` (resp.
    ``|x[i+1, j] - x[i, j]|``) over all channels, and divide the sum by ``B*C*H*W`` (the
    normalisation of the L1 terms)::

        L_tv = ( sum_{b,c,i,j: (i,j), (i,j+1) in P} |x[b,c,i,j+1] - x[b,c,i,j]|
               + sum_{b,c,i,j: (i,j), (i+1,j) in P} |x[b,c,i+1,j] - x[b,c,i,j]| ) / (B*C*H*W)

    Including the ring around the hole matters: it is where a filling meets the known pixels,
    and a visible seam there is what this term penalises.
    """
    _check_tensor("composite", composite)
    _check_hole(hole, composite)
    region = masks.dilate(hole.float(), 1, shape="square")  # P: (B, 1, H, W)
    x = composite.float()  # (B, C, H, W)
    both_horizontal = region[..., :, 1:] * region[..., :, :-1]  # (B, 1, H, W-1)
    both_vertical = region[..., 1:, :] * region[..., :-1, :]  # (B, 1, H-1, W)
    horizontal = (both_horizontal * (x[..., :, 1:] - x[..., :, :-1]).abs()).sum()
    vertical = (both_vertical * (x[..., 1:, :] - x[..., :-1, :]).abs()).sum()
    return (horizontal + vertical) / x.numel()


# ---------------------------------------------------------------------------------------------
# Feature losses: perceptual and style
# ---------------------------------------------------------------------------------------------


def extract_features(
    features: FeatureNetwork,
    output: torch.Tensor,
    composite: torch.Tensor,
    target: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Feature maps of the output, the composite and the target, as float32 lists.

    ``features`` maps images in ``[0, 1]`` to a list of feature maps (e.g. a
    :class:`~course_lib.feature_nets.FeatureExtractor`; a module is moved to the images'
    device). The target's maps are computed without gradient (they are a constant of the
    loss); output and composite go through the network together, as one batch.
    """
    _check_pair("output", output, "target", target)
    _check_pair("composite", composite, "target", target)
    if isinstance(features, nn.Module):
        features.to(output.device)  # a frozen loss network follows the data
    with torch.no_grad():
        target_maps = [m.float() for m in features(target.float())]
    batch = output.shape[0]
    both = features(torch.cat([output.float(), composite.float()]))  # maps of (2B, ...)
    output_maps = [m[:batch].float() for m in both]
    composite_maps = [m[batch:].float() for m in both]
    if not target_maps or len(output_maps) != len(target_maps):
        raise ValueError(
            f"the feature network must return the same non-empty list of maps for every input; "
            f"got {len(target_maps)} and {len(output_maps)} maps."
        )
    return output_maps, composite_maps, target_maps


def _check_maps(*lists: Maps) -> None:
    """Lists of feature maps ``(B, C_p, H_p, W_p)``, the same number and shapes in each."""
    if len({len(maps) for maps in lists}) != 1 or not lists[0]:
        raise ValueError(
            f"give the same non-empty number of feature maps for each image, got "
            f"{[len(maps) for maps in lists]}."
        )
    for layer, group in enumerate(zip(*lists, strict=True)):
        for index, tensor in enumerate(group):
            _check_tensor(f"feature map {layer} of input {index}", tensor)
        if len({tensor.shape for tensor in group}) != 1:
            raise ValueError(
                f"feature maps {layer} differ in shape: {[tuple(t.shape) for t in group]}."
            )


def perceptual_distance(output_maps: Maps, composite_maps: Maps, target_maps: Maps) -> torch.Tensor:
    """``sum_p mean|Psi_p(output) - Psi_p(target)| + mean|Psi_p(composite) - Psi_p(target)|``.

    Each mean is over all ``B*C_p*H_p*W_p`` elements of layer ``p`` (the paper divides by
    the number of elements of each layer).
    """
    _check_maps(output_maps, composite_maps, target_maps)
    total = output_maps[0].new_zeros((), dtype=torch.float32)
    for out, comp, truth in zip(output_maps, composite_maps, target_maps, strict=True):
        truth = truth.float()  # (B, C_p, H_p, W_p)
        total = total + (out.float() - truth).abs().mean() + (comp.float() - truth).abs().mean()
    return total


def perceptual_loss(
    output: torch.Tensor,
    composite: torch.Tensor,
    target: torch.Tensor,
    features: FeatureNetwork,
) -> torch.Tensor:
    """``L_perceptual``: :func:`perceptual_distance` of the maps of ``features``.

    Both the raw output and the composite are compared with the target: the composite term
    judges what a viewer sees, the output term keeps the raw prediction sensible everywhere.
    """
    return perceptual_distance(*extract_features(features, output, composite, target))


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, C)``: ``G[c, d] = sum_{i,j} F[c, i, j] F[d, i, j] / (C*H*W)``.

    How strongly channels ``c`` and ``d`` fire together, summed over all positions: a
    description of texture that has forgotten where things are. Computed in float32 with
    autocast off (a sum of ``H*W`` products overflows float16 easily).
    """
    _check_tensor("features", features)
    batch, channels, height, width = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = features.float().reshape(batch, channels, height * width)  # (B, C, HW)
        return flat @ flat.transpose(1, 2) / (channels * height * width)  # (B, C, C)


def style_distance(
    output_maps: Maps, composite_maps: Maps, target_maps: Maps
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_style_out, L_style_comp)``: ``sum_p mean|G(Psi_p(x)) - G(Psi_p(target))|`` for
    ``x`` = output and composite; each mean is over the ``B*C_p*C_p`` Gram entries (the paper's
    ``1 / C_p**2``)."""
    _check_maps(output_maps, composite_maps, target_maps)
    style_out = output_maps[0].new_zeros((), dtype=torch.float32)
    style_comp = output_maps[0].new_zeros((), dtype=torch.float32)
    for out, comp, truth in zip(output_maps, composite_maps, target_maps, strict=True):
        truth_gram = gram_matrix(truth)  # (B, C_p, C_p)
        style_out = style_out + (gram_matrix(out) - truth_gram).abs().mean()
        style_comp = style_comp + (gram_matrix(comp) - truth_gram).abs().mean()
    return style_out, style_comp


def style_loss(
    output: torch.Tensor,
    composite: torch.Tensor,
    target: torch.Tensor,
    features: FeatureNetwork,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_style_out, L_style_comp)`` of the maps of ``features`` (see :func:`style_distance`).

    The paper weighs both with 120: ``120 * (L_style_out + L_style_comp)``.
    """
    return style_distance(*extract_features(features, output, composite, target))


# ---------------------------------------------------------------------------------------------
# The partial-convolution paper's total loss
# ---------------------------------------------------------------------------------------------

PAPER_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style": 120.0, "tv": 0.1}
)
"""The weights of Liu et al. (2018). They were tuned for VGG-16 features; with another
feature network the perceptual and style terms have another scale."""

COURSE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    dict(recipes.load("ablation_full").loss["weights"])
)
"""The paper's weights re-balanced for the course's own feature network (lesson 04), as the
recipe of lesson 04's full-loss arm gives them (``course_lib/recipes/ablation_full.toml``):
the style weight is lowered, because with the course's features the paper's 120 would make
the style terms most of the loss. Lesson 04 measures each term's share under both."""

# Which weight multiplies each part: both style terms share the paper's weight 120.
WEIGHT_OF: Mapping[str, str] = MappingProxyType(
    {
        "valid": "valid",
        "hole": "hole",
        "perceptual": "perceptual",
        "style_out": "style",
        "style_comp": "style",
        "tv": "tv",
    }
)


def _as_floats(terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Each scalar term as a float for the trainer's history, all in one device transfer
    (one ``.item()`` per term would wait for the GPU once per term)."""
    values = torch.stack(list(terms.values())).tolist()
    return dict(zip(terms, values, strict=True))


class PConvLoss(nn.Module):
    """The partial-convolution paper's loss, as a training loss for :func:`course_lib.train.train`.

    ``loss_fn = PConvLoss(features)``; ``loss_fn(model, image, hole)`` returns ``(loss,
    parts)`` with the *unweighted* parts ``{"valid", "hole", "perceptual", "style_out",
    "style_comp", "tv"}`` as floats and ``loss = sum(weights[...] * part)``.

    * ``features``: the frozen feature network (see :func:`course_lib.feature_nets.default_features`);
      it is moved to the images' device when called.
    * ``weights``: the five weights ``{"valid", "hole", "perceptual", "style", "tv"}``; default
      :data:`PAPER_WEIGHTS`. Change one with ``{**PAPER_WEIGHTS, "tv": 0.0}``.
    """

    def __init__(
        self, features: FeatureNetwork, weights: Mapping[str, float] = PAPER_WEIGHTS
    ) -> None:
        super().__init__()
        if set(weights) != set(PAPER_WEIGHTS):
            raise ValueError(
                f"weights must give exactly {sorted(PAPER_WEIGHTS)}, got {sorted(weights)}; "
                "start from the paper's, e.g. {**PAPER_WEIGHTS, 'tv': 0.0}."
            )
        self.features = features
        self.weights = {name: float(value) for name, value in weights.items()}

    def extra_repr(self) -> str:
        return f"weights={self.weights}"

    def terms(
        self, output: torch.Tensor, image: torch.Tensor, hole: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Every unweighted term of a prediction ``output`` of ``image`` with ``hole``."""
        _check_pair("output", output, "image", image)
        _check_hole(hole, image)
        composite = masks.composite(image, hole, output)  # (B, 3, H, W)
        maps = extract_features(self.features, output, composite, image)
        style_out, style_comp = style_distance(*maps)
        return {
            "valid": valid_l1(output, image, hole),
            "hole": hole_l1(output, image, hole),
            "perceptual": perceptual_distance(*maps),
            "style_out": style_out,
            "style_comp": style_comp,
            "tv": total_variation(composite, hole),
        }

    def combine(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum over parts of weight * part`` (both style parts take the ``"style"`` weight)."""
        return sum(self.weights[WEIGHT_OF[name]] * value for name, value in terms.items())

    def forward(
        self, model: nn.Module, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, parts)`` of ``model``'s prediction, as :func:`course_lib.train.train` wants."""
        # Imported here, not at the top: course_lib.train may import this module to offer
        # the loss by name, and the two modules must not need each other to load.
        from course_lib.train import predict

        output = predict(model, image, hole).float()  # (B, 3, H, W), float32
        terms = self.terms(output, image.float(), hole)
        return self.combine(terms), _as_floats(terms)


class HoleL2Loss(nn.Module):
    """The Context Encoder's reconstruction term as a training loss (lesson 08):
    ``weight * hole_l2``, parts ``{"hole_l2"}`` (unweighted).

    Alone it is the paper's L2 arm; inside :class:`AdversarialLoss` it is the reconstruction
    part of the joint loss (the paper: 0.999 here, 0.001 on the adversarial term), and with
    ``weight = 0`` the adversarial-only arm, whose L2 is still reported.
    """

    def __init__(self, weight: float = 0.999) -> None:
        super().__init__()
        self.weight = check_number(weight, "weight", minimum=0.0)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"

    def terms(
        self, output: torch.Tensor, image: torch.Tensor, hole: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {"hole_l2": hole_l2(output, image, hole)}

    def combine(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.weight * terms["hole_l2"]

    def forward(
        self, model: nn.Module, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, parts)`` of ``model``'s prediction, as :func:`course_lib.train.train` wants."""
        from course_lib.train import predict  # see PConvLoss.forward

        terms = self.terms(predict(model, image, hole).float(), image.float(), hole)
        return self.combine(terms), _as_floats(terms)


# ---------------------------------------------------------------------------------------------
# Adversarial losses
# ---------------------------------------------------------------------------------------------


HOLE_MAP_MODES = ("area", "nearest")


def downsample_hole(
    hole: torch.Tensor, size: int | tuple[int, int], mode: str = "area"
) -> torch.Tensor:
    """How fake each cell of a ``size`` logit map is, from the hole: ``(B, 1, h, w)``.

    ``mode="area"``: the image is cut into an ``h x w`` grid (``F.adaptive_avg_pool2d``: cell
    ``i`` covers rows ``floor(i*H/h)`` to ``ceil((i+1)*H/h)``) and each cell gets its mean of
    ``hole``: 0 for a patch of known pixels only, 1 for a patch entirely made up, in between
    on the border, a soft label. ``mode="nearest"``: each cell takes the hole value of one
    pixel (``F.interpolate(..., mode="nearest")``), a hard 0/1 label, as LaMa's code does.
    """
    check_mask(hole, name="hole")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if min(height, width) < 1:
        raise ValueError(f"size must be positive, got {size!r}.")
    if mode not in HOLE_MAP_MODES:
        raise ValueError(f"mode must be one of {HOLE_MAP_MODES}, got {mode!r}.")
    if mode == "nearest":
        return F.interpolate(hole.float(), size=(height, width), mode="nearest")
    return F.adaptive_avg_pool2d(hole.float(), (height, width))


def _check_logits(name: str, logits: torch.Tensor) -> None:
    _check_tensor(name, logits, channels=1)


def _check_map(name: str, weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """A map of weights in ``[0, 1]`` with the logits' shape, as float32."""
    _check_tensor(name, weights, channels=1)
    if weights.shape != logits.shape:
        raise ValueError(
            f"{name} {tuple(weights.shape)} must have the logits' shape {tuple(logits.shape)}; "
            "make it with downsample_hole(hole, logits.shape[-2:])."
        )
    if weights.numel() and (weights.min() < 0 or weights.max() > 1):
        raise ValueError(f"{name} must hold values in [0, 1] (the hole fraction of each patch).")
    return weights.float()


def nonsaturating_d_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    fake_hole_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """The discriminator's cross-entropy: real patches are real, made-up patches are fake.

    ``mean(softplus(-real)) + mean(m * softplus(fake) + (1 - m) * softplus(-fake))``, where
    ``softplus(-x) = -log sigmoid(x)`` is the cost of answering "real" with logit ``x``, and
    ``m`` is ``fake_hole_map`` (:func:`downsample_hole` of the fake's hole; ``None``: every
    patch of the fake is fake). As in LaMa, the known patches of a fake are labelled *real*:
    they are real pixels, and calling them fake would teach the discriminator to spot the
    generator's style rather than its holes. Patches on the hole's border get a soft label.
    """
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    real, fake = real_logits.float(), fake_logits.float()
    real_term = F.softplus(-real).mean()
    if fake_hole_map is None:
        return real_term + F.softplus(fake).mean()
    m = _check_map("fake_hole_map", fake_hole_map, fake_logits)
    return real_term + (m * F.softplus(fake) + (1 - m) * F.softplus(-fake)).mean()


def nonsaturating_g_loss(
    fake_logits: torch.Tensor, hole_map: torch.Tensor | None = None
) -> torch.Tensor:
    """The generator's non-saturating loss: ``mean(softplus(-fake))`` = ``-log sigmoid(fake)``.

    Minimising ``-log D`` (rather than maximising ``-log(1 - D)``) keeps the gradient strong
    when the discriminator is winning. With ``hole_map`` (:func:`downsample_hole`) each
    patch's term is weighted by its hole fraction, so the generator is judged on what it made
    up only; the mean is still over all patches.
    """
    _check_logits("fake_logits", fake_logits)
    cost = F.softplus(-fake_logits.float())  # (B, 1, h, w)
    if hole_map is not None:
        cost = _check_map("hole_map", hole_map, fake_logits) * cost
    return cost.mean()


def hinge_d_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    fake_hole_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """SN-PatchGAN's discriminator loss: ``mean(relu(1 - real)) + mean(relu(1 + fake))``.

    Zero once real logits are at least 1 and fake ones at most -1. With ``fake_hole_map``
    ``m``, the fake term becomes ``m * relu(1 + fake) + (1 - m) * relu(1 - fake)``: known
    patches of the fake are real, as in :func:`nonsaturating_d_loss`.
    """
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    real, fake = real_logits.float(), fake_logits.float()
    real_term = F.relu(1 - real).mean()
    if fake_hole_map is None:
        return real_term + F.relu(1 + fake).mean()
    m = _check_map("fake_hole_map", fake_hole_map, fake_logits)
    return real_term + (m * F.relu(1 + fake) + (1 - m) * F.relu(1 - fake)).mean()


def hinge_g_loss(fake_logits: torch.Tensor, hole_map: torch.Tensor | None = None) -> torch.Tensor:
    """SN-PatchGAN's generator loss: ``-mean(fake)`` (``-mean(hole_map * fake)`` with a map)."""
    _check_logits("fake_logits", fake_logits)
    fake = fake_logits.float()
    if hole_map is not None:
        fake = _check_map("hole_map", hole_map, fake_logits) * fake
    return -fake.mean()


def r1_penalty(real_images: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """``E_x ||grad_x sum(D(x))||^2`` over real images: the R1 penalty, without its weight.

    The gradient of the sum of an image's patch logits with respect to its pixels, squared
    and summed over the pixels, averaged over the batch. Built with ``create_graph=True``, so
    it trains the discriminator: it flattens D around real images, which keeps GAN training
    stable. The caller multiplies by the weight: LaMa uses 0.001 (``0.001 * r1_penalty``);
    Mescheder et al. write ``gamma / 2 * r1_penalty``.

    ``real_images`` must have ``requires_grad=True`` *before* ``real_logits = D(real_images)``.
    """
    _check_tensor("real_images", real_images)
    _check_logits("real_logits", real_logits)
    if not real_images.requires_grad:
        raise ValueError(
            "r1_penalty needs the gradient of D with respect to the real images: call "
            "real_images.requires_grad_(True) before real_logits = discriminator(real_images)."
        )
    try:
        (gradient,) = torch.autograd.grad(real_logits.float().sum(), real_images, create_graph=True)
    except RuntimeError as error:
        raise ValueError(
            f"real_logits must be computed from real_images by the discriminator ({error})."
        ) from error
    return gradient.float().pow(2).flatten(1).sum(dim=1).mean()


def feature_matching_loss(
    real_features: Maps, fake_features: Maps, squared: bool = False
) -> torch.Tensor:
    """``mean over layers l of mean|D_l(fake) - D_l(real)|``: L1 between discriminator features.

    ``*_features`` are the lists ``PatchDiscriminator(..., return_features=True)`` returns.
    The real features are the target: they are detached, so this loss only trains the
    generator. ``squared=True``: the mean *squared* difference per layer instead (LaMa's
    code uses that; pix2pixHD, where the term comes from, the L1).
    """
    _check_maps(real_features, fake_features)
    total = fake_features[0].new_zeros((), dtype=torch.float32)
    for real, fake in zip(real_features, fake_features, strict=True):
        difference = fake.float() - real.detach().float()
        total = total + (difference.pow(2) if squared else difference.abs()).mean()
    return total / len(real_features)


class AdversarialLoss(nn.Module):
    """A reconstruction loss plus an adversary's judgement (lesson 04). Computes losses only.

    ``loss_fn = AdversarialLoss(PConvLoss(...))`` is a training loss for
    :func:`course_lib.train.train`, which owns the optimisation of both networks: at every
    step it updates the generator with this module's loss, then the discriminator with
    :meth:`discriminator_loss` on the same step's composite.

    * ``forward(model, image, hole)``: the ``base`` loss ``+ weight *``
      :func:`nonsaturating_g_loss` of the composite, judged on its made-up patches only.
      ``parts`` are the base loss's parts plus ``"adversarial"`` (the generator's term). The
      detached composite is kept as :attr:`last_fake` for the discriminator's step.
    * ``discriminator_loss(image, fake, hole)``: real images against the fakes, with LaMa's
      labels (:func:`nonsaturating_d_loss` with the hole map: only made-up patches of a fake
      are fake), plus ``r1_weight *`` :func:`r1_penalty`; its parts are ``"d_loss"`` and
      ``"r1"``.

    The discriminator is a submodule, so its weights are in this module's ``state_dict`` and
    in a run's checkpoint; its optimiser belongs to the trainer, which checkpoints it too.
    """

    def __init__(
        self,
        base: nn.Module,
        discriminator: nn.Module | None = None,
        weight: float = 0.1,
        r1_weight: float = 0.001,
    ) -> None:
        super().__init__()
        self.base = base
        self.discriminator = discriminator if discriminator is not None else PatchDiscriminator()
        self.weight = float(weight)
        self.r1_weight = float(r1_weight)
        self.last_fake: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"weight={self.weight}, r1_weight={self.r1_weight}"

    def forward(
        self, model: nn.Module, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, parts)`` of the generator for :func:`course_lib.train.train`."""
        from course_lib.train import predict  # see PConvLoss.forward: no import cycle

        output = predict(model, image, hole).float()  # (B, 3, H, W)
        composite = masks.composite(image.float(), hole, output)  # (B, 3, H, W)
        self.last_fake = composite.detach()
        terms = self.base.terms(output, image.float(), hole)
        adversarial = self.generator_term(composite, hole)
        values = torch.stack([*terms.values(), adversarial]).tolist()
        parts = dict(zip([*terms, "adversarial"], values, strict=True))
        return self.base.combine(terms) + self.weight * adversarial, parts

    def generator_term(self, composite: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term: the made-up patches of ``composite`` judged."""
        fake_logits = self.discriminator(composite)  # (B, 1, h, w)
        return nonsaturating_g_loss(fake_logits, downsample_hole(hole, fake_logits.shape[-2:]))

    def discriminator_loss(
        self, image: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, {"d_loss", "r1"})`` of the discriminator on real ``image`` and ``fake``
        composites (detached), in float32 whatever the loop's autocast."""
        return _discriminator_loss(self.discriminator, image, fake, hole, self.r1_weight, "area")


class GlobalLocalAdversarialLoss(AdversarialLoss):
    """GLCIC's adversarial training (lesson 08): :class:`AdversarialLoss` with a
    :class:`~course_lib.glcic.GlobalLocalDiscriminator` as the judge.

    The judge gives one logit per image (is the whole composite real?), not a map of patches,
    so there are no hole-aware labels: a composite is fake. With a local branch it also sees
    the crop around the hole (:func:`~course_lib.glcic.hole_crops`), of real images at the
    same place as of fakes. The paper's loss is the plain GAN cross-entropy, written here in
    its non-saturating form, and has no gradient penalty. ``discriminator_loss`` has the
    parts ``{"d_loss"}``.
    """

    def __init__(self, base: nn.Module, discriminator: nn.Module, weight: float = 0.0004) -> None:
        super().__init__(base, discriminator, check_number(weight, "weight", minimum=0.0), 0.0)

    def judge(self, images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The discriminator's logits ``(B, 1, 1, 1)`` for ``images`` with holes at ``hole``."""
        from course_lib.glcic import hole_crops

        crop = None
        if self.discriminator.local:
            crop = hole_crops(images, hole, self.discriminator.sizes[1])  # (B, 3, s, s)
        return self.discriminator(images, crop)[:, :, None, None]  # (B, 1, 1, 1)

    def generator_term(self, composite: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return nonsaturating_g_loss(self.judge(composite, hole))

    def discriminator_loss(
        self, image: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.autocast(image.device.type, enabled=False):
            real_logits = self.judge(image.detach().float(), hole)
            fake_logits = self.judge(fake.detach().float(), hole)
            d_loss = nonsaturating_d_loss(real_logits, fake_logits)
        return d_loss, _as_floats({"d_loss": d_loss})


class EdgeAdversarialLoss(nn.Module):
    """EdgeConnect's loss for its edge generator (lesson 09). Computes losses only; the trainer
    owns the optimisation of both networks, as for :class:`AdversarialLoss`.

    The target is the true Canny edge map of the whole image
    (:func:`course_lib.edges.canny_edges`). A discriminator sees an edge map beside the grey
    image, ``(B, 2, H, W)``: the true one is real, the generator's whole raw output is fake
    (as in the paper's code, which also leaves out any pixel loss on the edges).

    * ``forward(model, image, hole)``: ``adversarial *`` :func:`nonsaturating_g_loss` ``+
      feature_matching *`` :func:`feature_matching_loss` (L1 between the discriminator's
      features of the fake and of the truth; the paper: 1 and 10); parts ``"adversarial"``,
      ``"feature_matching"`` (unweighted) and ``"edge_l1"`` (mean |output - truth| in the
      hole, reported, not trained on).
    * ``discriminator_loss(image, fake, hole)``: :func:`nonsaturating_d_loss`, parts
      ``{"d_loss"}``.
    """

    def __init__(
        self, discriminator: nn.Module, adversarial: float = 1.0, feature_matching: float = 10.0
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.adversarial = check_number(adversarial, "adversarial", minimum=0.0)
        self.feature_matching = check_number(feature_matching, "feature_matching", minimum=0.0)
        self.last_fake: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"adversarial={self.adversarial}, feature_matching={self.feature_matching}"

    @staticmethod
    def judged(image: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """The discriminator's input ``(B, 2, H, W)``: the grey image and an edge map."""
        return torch.cat([image.float().mean(dim=1, keepdim=True), edges.float()], dim=1)

    def forward(
        self, model: nn.Module, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, parts)`` of the edge generator for :func:`course_lib.train.train`."""
        from course_lib.edges import canny_edges
        from course_lib.train import predict  # see PConvLoss.forward: no import cycle

        truth = canny_edges(image)  # (B, 1, H, W)
        output = predict(model, image, hole).float()  # (B, 1, H, W) edge probabilities
        fake = self.judged(image, output)
        self.last_fake = fake.detach()
        fake_logits, fake_features = self.discriminator(fake, return_features=True)
        with torch.no_grad():
            _, real_features = self.discriminator(self.judged(image, truth), return_features=True)
        terms = {
            "adversarial": nonsaturating_g_loss(fake_logits),
            "feature_matching": feature_matching_loss(real_features, fake_features),
        }
        loss = self.adversarial * terms["adversarial"]
        loss = loss + self.feature_matching * terms["feature_matching"]
        with torch.no_grad():
            terms["edge_l1"] = (hole * (output - truth).abs()).sum() / hole.sum().clamp(min=1)
        return loss, _as_floats(terms)

    def discriminator_loss(
        self, image: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        from course_lib.edges import canny_edges

        with torch.autocast(image.device.type, enabled=False):
            real_logits = self.discriminator(self.judged(image, canny_edges(image)))
            fake_logits = self.discriminator(fake.detach().float())
            d_loss = nonsaturating_d_loss(real_logits, fake_logits)
        return d_loss, _as_floats({"d_loss": d_loss})


def _discriminator_loss(
    discriminator: nn.Module,
    image: torch.Tensor,
    fake: torch.Tensor,
    hole: torch.Tensor,
    r1_weight: float,
    hole_map_mode: str,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The non-saturating discriminator loss with hole-aware fake labels, plus ``r1_weight``
    times the R1 penalty; float32 whatever the loop's autocast. Shared by the adversarial
    losses of lessons 04 and 05, which differ in what they call the fake and in the labels."""
    with torch.autocast(image.device.type, enabled=False):
        # R1 needs d logits / d pixels; without its weight, skip its double backward.
        real = image.detach().float().requires_grad_(r1_weight > 0)
        real_logits = discriminator(real)  # (B, 1, h, w)
        fake_logits = discriminator(fake.detach().float())
        fake_map = downsample_hole(hole, fake_logits.shape[-2:], hole_map_mode)  # (B, 1, h, w)
        d_loss = nonsaturating_d_loss(real_logits, fake_logits, fake_map)
        if r1_weight == 0:
            return d_loss, _as_floats({"d_loss": d_loss})
        r1 = r1_penalty(real, real_logits)
    return d_loss + r1_weight * r1, _as_floats({"d_loss": d_loss, "r1": r1})


class HighReceptiveFieldPerceptual(nn.Module):
    """LaMa's high-receptive-field perceptual loss: ``sum_l mean((Phi_l(output) - Phi_l(target))**2)``.

    A perceptual loss whose network sees far: LaMa uses a segmentation ResNet-50 with dilated
    convolutions, so its features describe large structures (a wall, a fence), and the loss
    asks for the right *global* structure. As in LaMa, it is a squared error per layer (mean
    over all elements), summed over layers, on the raw output; LaMa weighs it by 30.

    ``network``: any module mapping images in ``[0, 1]`` to a list of feature maps; default
    the course network in its dilated form (``course_features(dilated=True)``), whose deepest
    maps see 36x36 pixels, more than half of the course's 64x64 images, at half resolution.

    ``normalise=True`` divides each layer's squared error by the mean square of the target's
    maps in that layer (detached): a relative error, 1 for an output whose features are all
    zero. LaMa's network ends its layers in batch norm, so its maps have about the same scale
    in every layer; the course network's layers do not (its deepest one is about ten times
    larger than the first), and without this the deepest layer alone would set the loss and
    LaMa's weight 30 would mean something else. Lesson 05 shows the scales.
    """

    def __init__(self, network: FeatureNetwork | None = None, normalise: bool = False) -> None:
        super().__init__()
        self.network = network if network is not None else course_features(dilated=True)
        self.normalise = bool(normalise)

    def extra_repr(self) -> str:
        return f"normalise={self.normalise}"

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``output`` against ``target`` (both ``(B, 3, H, W)``), a scalar."""
        _check_pair("output", output, "target", target)
        if isinstance(self.network, nn.Module):
            self.network.to(output.device)
        with torch.no_grad():
            target_maps = list(self.network(target.float()))
        output_maps = list(self.network(output.float()))
        _check_maps(output_maps, target_maps)
        total = output.new_zeros((), dtype=torch.float32)
        for out, truth in zip(output_maps, target_maps, strict=True):
            error = (out.float() - truth.float()).pow(2).mean()
            if self.normalise:
                error = error / truth.float().pow(2).mean().clamp(min=1e-12)
            total = total + error
        return total


LAMA_WEIGHTS: Mapping[str, float] = MappingProxyType(
    dict(recipes.load("tiny_lama_shallow").loss["weights"])
)
"""LaMa's weights, as lesson 05's recipe gives them (``course_lib/recipes/tiny_lama_shallow.toml``,
checked against LaMa's big-lama training config): L1 on the known pixels, the generator's
non-saturating term, discriminator feature matching, high-receptive-field perceptual. R1
belongs to the discriminator's loss."""


class LaMaLoss(nn.Module):
    """LaMa's training loss (lesson 05). Computes losses only; the trainer owns optimisation.

    The generator's loss on the raw prediction ``output`` (not the composite: LaMa's
    discriminator judges what the network painted everywhere, so the known region is
    supervised by the adversary too):

        10 * L1 on the known pixels + 10 * nonsaturating_g_loss(D(output))
        + 100 * feature_matching(D(output), D(image)) + 30 * HRF perceptual(output, image)

    There is **no** L1 on the hole: there the answer is ambiguous and an L1 term pulls towards
    the blurry average of every plausible answer; the hole is supervised by the perceptual,
    feature-matching and adversarial terms only. ``weights`` (default :data:`LAMA_WEIGHTS`)
    name the four terms; ``parts`` report each term unweighted.

    The discriminator's loss (:meth:`discriminator_loss`, run by the trainer after each
    generator update on :attr:`last_fake`, the detached prediction): real images are real;
    a prediction's patches are fake where the hole is, by LaMa's hard labels (the mask resized
    by nearest neighbour to the logit map, ``downsample_hole(..., mode="nearest")``), and
    real elsewhere; plus ``r1_weight`` (LaMa: 0.001) times :func:`r1_penalty`.

    ``discriminator``: a :class:`PatchDiscriminator` whose logits see patches, not the whole
    image; ``perceptual``: a :class:`HighReceptiveFieldPerceptual` (default the course's
    dilated feature network).
    """

    def __init__(
        self,
        discriminator: nn.Module | None = None,
        perceptual: nn.Module | None = None,
        weights: Mapping[str, float] = LAMA_WEIGHTS,
        r1_weight: float = 0.001,
    ) -> None:
        super().__init__()
        if set(weights) != set(LAMA_WEIGHTS):
            raise ValueError(
                f"LaMaLoss weights must name exactly {sorted(LAMA_WEIGHTS)}, got {sorted(weights)}."
            )
        self.discriminator = discriminator if discriminator is not None else PatchDiscriminator()
        self.perceptual = perceptual if perceptual is not None else HighReceptiveFieldPerceptual()
        self.weights = {name: float(weights[name]) for name in LAMA_WEIGHTS}
        self.r1_weight = float(r1_weight)
        self.last_fake: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"weights={self.weights}, r1_weight={self.r1_weight}"

    def terms(
        self, output: torch.Tensor, target: torch.Tensor, hole: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The four generator terms, unweighted, each a float32 scalar."""
        _check_pair("output", output, "target", target)
        _check_hole(hole, output)
        fake_logits, fake_features = self.discriminator(output, return_features=True)
        with torch.no_grad():  # the real features are only a target
            _, real_features = self.discriminator(target, return_features=True)
        return {
            "known": valid_l1(output, target, hole),
            # Every patch, the known ones too, as in LaMa's generator loss.
            "adversarial": nonsaturating_g_loss(fake_logits),
            "feature_matching": feature_matching_loss(real_features, fake_features, squared=True),
            "perceptual": self.perceptual(output, target),
        }

    def forward(
        self, model: nn.Module, image: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, parts)`` of the generator for :func:`course_lib.train.train`."""
        from course_lib.train import predict  # see PConvLoss.forward: no import cycle

        output = predict(model, image, hole).float()  # (B, 3, H, W)
        self.last_fake = output.detach()  # LaMa's discriminator sees the raw prediction
        terms = self.terms(output, image.float(), hole)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        return loss, _as_floats(terms)

    def generator_term(self, composite: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term: the made-up patches of ``composite`` judged."""
        fake_logits = self.discriminator(composite)  # (B, 1, h, w)
        return nonsaturating_g_loss(fake_logits, downsample_hole(hole, fake_logits.shape[-2:]))

    def discriminator_loss(
        self, image: torch.Tensor, fake: torch.Tensor, hole: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, {"d_loss", "r1"})`` of the discriminator on real ``image`` and the
        detached predictions ``fake``, with LaMa's hard (nearest-neighbour) fake labels."""
        return _discriminator_loss(self.discriminator, image, fake, hole, self.r1_weight, "nearest")


# ---------------------------------------------------------------------------------------------
# Named losses for the training command
# ---------------------------------------------------------------------------------------------


def _pconv_course() -> PConvLoss:
    return PConvLoss(course_features(), COURSE_WEIGHTS)


def _perceptual_style_course() -> PConvLoss:
    return PConvLoss(course_features(), {**COURSE_WEIGHTS, "tv": 0.0})


def _pconv_course_adversarial() -> AdversarialLoss:
    return AdversarialLoss(_pconv_course())


def _pconv_vgg16() -> PConvLoss:
    return PConvLoss(vgg16_features())


LOSS_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "pconv_course": _pconv_course,
    "pconv_vgg16": _pconv_vgg16,
    "perceptual_style_course": _perceptual_style_course,
    "pconv_course_adversarial": _pconv_course_adversarial,
}
"""Training losses by name, built on demand (building loads a feature network): the paper's
loss with the course's feature network and :data:`COURSE_WEIGHTS`, or with VGG-16 and
:data:`PAPER_WEIGHTS` (needs its ImageNet weights); and lesson 04's ablation arms: the course
loss without total variation (L1 + perceptual + style), and with an adversary."""
