"""Training recipes as data: one TOML file per shipped weight file (lessons 03-06).

A recipe says everything a training run depends on, so that a run can be repeated and its
choices read, compared and changed without editing the library:

* ``model``: a key of :data:`course_lib.train.MODELS` (a class and its configuration), and
  ``init``, shipped weights to start from (optional);
* ``steps`` and ``seed``;
* ``[data]``: the image sources, size, batch size and mask distribution
  (:class:`course_lib.train.InpaintingBatches`);
* ``[loss]``: which terms (``"l1"``, the partial-convolution paper's ``"pconv"`` total loss,
  LaMa's ``"lama"`` loss, ``"mae"``, the Context Encoder's ``"hole_l2"``, EdgeConnect's
  ``"edges"``), the feature network
  and the weights of each term, and an optional ``[loss.adversarial]`` table (its weight, its
  ``r1_weight`` and optionally its ``discriminator``'s ``width`` and ``layers``); ``"lama"``
  also gives its ``r1_weight`` and its ``discriminator`` (``width`` and ``layers`` of the
  :class:`~course_lib.discriminator.PatchDiscriminator`) and ``normalise_perceptual`` (see
  :class:`~course_lib.losses.HighReceptiveFieldPerceptual`). An adversary with
  ``kind = "global_local"`` is GLCIC's (lesson 08): its ``weight`` and its ``discriminator``'s
  ``image_size``, ``crop_size``, ``width`` and ``local`` (see
  :class:`~course_lib.glcic.GlobalLocalDiscriminator`), no ``r1_weight``; ``"edges"`` is
  EdgeConnect's edge-generator loss (lesson 09): its ``weights`` (``adversarial``,
  ``feature_matching``) and its ``discriminator`` (``width``, ``layers``; see
  :class:`~course_lib.losses.EdgeAdversarialLoss`);
* ``[optimiser]``: its name and learning rate, and its schedule; optionally
  ``clip_grad_norm`` (clip each network's gradients to this norm) and, with an adversarial
  loss, ``discriminator_lr`` and ``discriminator_betas`` (the discriminator's Adam; default
  the generator's default rate and :data:`course_lib.train.DISCRIMINATOR_BETAS`);
* ``freeze_encoder_bn`` (optional): the partial-convolution paper's fine-tuning stage, with
  the encoder's batch norms frozen (a stage is a recipe whose ``init`` is the weights of the
  stage before);
* ``[validation]`` (optional): every ``every`` steps, the hole-only PSNR of ``pairs`` fixed
  validation pairs (:func:`course_lib.train.validation_pairs`; with ``centred_box``, that
  coverage's centred box in each) goes into the run's history.

``python -m course_lib.train --recipe NAME`` runs one (see :mod:`course_lib.train`), and the
weights' ``.json`` record names the recipe and the sha256 of its file. The files live in
``course_lib/recipes/NAME.toml``; read one with :func:`load`.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

RECIPE_FOLDER = Path(__file__).resolve().parent / "recipes"
LOSS_TERMS = ("l1", "pconv", "lama", "mae", "hole_l2", "edges")
FEATURES = ("course", "vgg16")
OPTIMISERS = ("adam", "mae_adamw")
PCONV_WEIGHTS = ("valid", "hole", "perceptual", "style", "tv")
LAMA_WEIGHTS = ("known", "adversarial", "feature_matching", "perceptual")
EDGE_WEIGHTS = ("adversarial", "feature_matching")

# What each table may hold: key -> required? (anything else in a file is a mistake).
_TOP = {
    "description": True,
    "model": True,
    "init": False,
    "freeze_encoder_bn": False,
    "steps": True,
    "seed": True,
    "validation": False,
}
_TABLES = {
    "data": {
        "sources": True,
        "size": True,
        "batch_size": True,
        "mask_kind": True,
        "coverage": False,
        "mask_options": False,
        "flip": False,
        "photo_short_sides": False,
    },
    "loss": {
        "terms": True,
        "features": False,
        "weights": False,
        "adversarial": False,
        "r1_weight": False,
        "discriminator": False,
        "normalise_perceptual": False,
        "masking": False,
        "ratio": False,
    },
    "optimiser": {
        "name": True,
        "lr": True,
        "warmup_fraction": False,
        "clip_grad_norm": False,
        "discriminator_lr": False,
        "discriminator_betas": False,
    },
}
_ADVERSARIAL = {"weight": True, "r1_weight": True, "discriminator": False}
_GLOBAL_LOCAL = {"kind": True, "weight": True, "discriminator": True}
_GLOBAL_LOCAL_DISCRIMINATOR = {"image_size": True, "crop_size": True, "width": True, "local": True}
ADVERSARY_KINDS = ("patch", "global_local")
_HOLE_L2 = {"terms": True, "weights": True, "adversarial": False}
_LAMA = {
    "terms": True,
    "weights": True,
    "r1_weight": True,
    "discriminator": True,
    "normalise_perceptual": True,
}
_MAE = {"terms": True, "masking": False, "ratio": False}
_EDGES = {"terms": True, "weights": True, "discriminator": True}
_DISCRIMINATOR = {"width": True, "layers": True}
_VALIDATION = {"every": True, "pairs": True, "centred_box": False}


@dataclass(frozen=True)
class Recipe:
    """One recipe file, checked. ``sha256`` is the hash of the file's bytes."""

    name: str
    description: str
    model: str
    steps: int
    seed: int
    data: dict[str, Any]
    loss: dict[str, Any]
    optimiser: dict[str, Any]
    sha256: str
    path: Path
    init: str | None = None
    freeze_encoder_bn: bool = False
    validation: dict[str, int] | None = None


def names() -> list[str]:
    """The recipes shipped with the course."""
    return sorted(path.stem for path in RECIPE_FOLDER.glob("*.toml"))


def path_of(name_or_path: str | Path) -> Path:
    """``NAME`` -> ``course_lib/recipes/NAME.toml``; a path to a ``.toml`` file is kept."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        path = candidate
    else:
        path = RECIPE_FOLDER / f"{name_or_path}.toml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no recipe {str(name_or_path)!r}: {path} does not exist. Shipped recipes: "
            f"{', '.join(names())}; or give the path of your own .toml file."
        )
    return path


def load(name_or_path: str | Path) -> Recipe:
    """Read and check a recipe: every table and key it must have, nothing it must not."""
    path = path_of(name_or_path)
    raw = path.read_bytes()
    try:
        content = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a valid TOML file: {error}") from error
    where = path.name
    _check_keys(content, {**_TOP, **dict.fromkeys(_TABLES, True)}, where)
    if "validation" in content:
        _check_keys(content["validation"], _VALIDATION, f"{where} [validation]")
    for table, keys in _TABLES.items():
        if not isinstance(content[table], dict):
            raise ValueError(f"{where}: [{table}] must be a table.")
        _check_keys(content[table], keys, f"{where} [{table}]")
    _check_loss(content["loss"], where)
    _check_optimiser(content["optimiser"], where)
    adversarial = "adversarial" in content["loss"] or content["loss"]["terms"] in ("lama", "edges")
    for key in ("discriminator_lr", "discriminator_betas"):
        if key in content["optimiser"] and not adversarial:
            raise ValueError(
                f"{where} [optimiser]: {key} needs an adversarial loss ([loss.adversarial] or "
                'terms = "lama" or "edges"); remove it or add the adversary.'
            )
    for key in ("steps", "seed"):
        value = content[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (key == "steps"):
            raise ValueError(f"{where}: {key} must be a whole number, got {value!r}.")
    return Recipe(
        name=path.stem,
        description=content["description"],
        model=content["model"],
        steps=content["steps"],
        seed=content["seed"],
        data=dict(content["data"]),
        loss=dict(content["loss"]),
        optimiser=dict(content["optimiser"]),
        sha256=hashlib.sha256(raw).hexdigest(),
        init=content.get("init") or None,
        freeze_encoder_bn=bool(content.get("freeze_encoder_bn", False)),
        validation=dict(content["validation"]) if "validation" in content else None,
        path=path,
    )


def _check_keys(table: dict, allowed: dict[str, bool], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(allowed)}.")
    missing = sorted(key for key, required in allowed.items() if required and key not in table)
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}.")


def _check_loss(loss: dict, where: str) -> None:
    if loss["terms"] not in LOSS_TERMS:
        raise ValueError(
            f"{where} [loss]: terms must be one of {LOSS_TERMS}, got {loss['terms']!r}."
        )
    if loss["terms"] == "lama":
        _check_keys(loss, _LAMA, where)
        _check_keys(loss["weights"], dict.fromkeys(LAMA_WEIGHTS, True), f"{where} [loss.weights]")
        _check_keys(loss["discriminator"], _DISCRIMINATOR, f"{where} [loss.discriminator]")
        return
    if loss["terms"] == "edges":  # lesson 09's edge generator
        _check_keys(loss, _EDGES, where)
        _check_keys(loss["weights"], dict.fromkeys(EDGE_WEIGHTS, True), f"{where} [loss.weights]")
        _check_keys(loss["discriminator"], _DISCRIMINATOR, f"{where} [loss.discriminator]")
        return
    if loss["terms"] == "mae":  # optional: MAELoss's masks (lesson 06)
        _check_keys(loss, _MAE, where)
        return
    if loss["terms"] == "hole_l2":  # lesson 08's Context Encoder
        _check_keys(loss, _HOLE_L2, where)
        _check_keys(loss["weights"], {"hole": True}, f"{where} [loss.weights]")
        if "adversarial" in loss:
            _check_adversarial(loss["adversarial"], where)
        return
    if loss["terms"] != "pconv":
        extra = sorted(set(loss) - {"terms"})
        if extra:
            raise ValueError(f"{where} [loss]: terms = {loss['terms']!r} takes no {extra}.")
        return
    _check_keys(
        loss, {"terms": True, "features": True, "weights": True, "adversarial": False}, where
    )
    if loss["features"] not in FEATURES:
        raise ValueError(f"{where} [loss]: features must be one of {FEATURES}.")
    _check_keys(loss["weights"], dict.fromkeys(PCONV_WEIGHTS, True), f"{where} [loss.weights]")
    if "adversarial" in loss:
        _check_adversarial(loss["adversarial"], where)


def _check_adversarial(adversarial: dict, where: str) -> None:
    kind = adversarial.get("kind", "patch")
    if kind not in ADVERSARY_KINDS:
        raise ValueError(
            f"{where} [loss.adversarial]: kind must be one of {ADVERSARY_KINDS}, got {kind!r}."
        )
    if kind == "global_local":
        _check_keys(adversarial, _GLOBAL_LOCAL, f"{where} [loss.adversarial]")
        _check_keys(
            adversarial["discriminator"],
            _GLOBAL_LOCAL_DISCRIMINATOR,
            f"{where} [loss.adversarial.discriminator]",
        )
        return
    _check_keys(adversarial, {**_ADVERSARIAL, "kind": False}, f"{where} [loss.adversarial]")
    if "discriminator" in adversarial:
        _check_keys(
            adversarial["discriminator"],
            _DISCRIMINATOR,
            f"{where} [loss.adversarial.discriminator]",
        )


def _check_optimiser(optimiser: dict, where: str) -> None:
    if optimiser["name"] not in OPTIMISERS:
        raise ValueError(
            f"{where} [optimiser]: name must be one of {OPTIMISERS}, got {optimiser['name']!r}."
        )
    for key in ("lr", "discriminator_lr"):
        rate = optimiser.get(key, 1e-4)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
            raise ValueError(
                f"{where} [optimiser]: {key} must be a number in (0, 1), got {rate!r}."
            )
    betas = optimiser.get("discriminator_betas", [0.5, 0.999])
    if (
        not isinstance(betas, list)
        or len(betas) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas)
        or not all(0 <= b < 1 for b in betas)
    ):
        raise ValueError(
            f"{where} [optimiser]: discriminator_betas must be two numbers in [0, 1), e.g. "
            f"[0.9, 0.999], got {betas!r}."
        )
    clip = optimiser.get("clip_grad_norm", 1.0)
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
        raise ValueError(
            f"{where} [optimiser]: clip_grad_norm must be a positive number, got {clip!r}."
        )
    if (optimiser["name"] == "mae_adamw") != ("warmup_fraction" in optimiser):
        raise ValueError(
            f"{where} [optimiser]: warmup_fraction belongs to mae_adamw (its warm-up), and "
            "mae_adamw needs it."
        )
