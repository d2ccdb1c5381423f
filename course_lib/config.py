"""Profiles, devices, seeds and the one setup call every lesson starts with (lesson 00).

A *profile* says how big the experiments of a lesson are:

* ``quick``: every notebook finishes in about 90 s on a 2-core laptop CPU. This is the default
  without a GPU and what the tests and CI run.
* ``full``: the real experiment, each lesson under 20 minutes on a free Colab T4. This is the
  default when CUDA or Apple's MPS is available.

Choose one explicitly with the environment variable ``COURSE_PROFILE=quick|full``. Notebooks
read every size and step count from :func:`profile`, never from literals in cells.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

# Where the course is published; Colab badges and the Colab install cell point here.
REPOSITORY = "github.com/inpainting-course/course-kit"
PROFILE_VARIABLE = "COURSE_PROFILE"
DEVICE_VARIABLE = "COURSE_DEVICE"


@dataclass(frozen=True)
class Profile:
    """Sizes and step counts shared by the lessons; one instance per profile name."""

    name: str
    image_size: int  # side of the square images most experiments use
    batch_size: int  # training batch size
    train_steps: int  # steps of a live training run inside a notebook
    eval_images: int  # images scored per (coverage band, mask kind) cell of a table
    samples: int  # masks drawn for histograms and coverage statistics
    description: str


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        image_size=64,
        batch_size=16,
        train_steps=60,
        eval_images=16,
        samples=512,
        description="small and fast: every notebook in about 90 s on a 2-core CPU (tests, CI)",
    ),
    "full": Profile(
        name="full",
        image_size=64,
        batch_size=32,
        train_steps=3000,
        eval_images=100,
        samples=4096,
        description="the real experiment: each lesson under 20 minutes on a Colab T4 GPU",
    ),
}


def _mps_available() -> bool:
    """True when Apple's MPS (the GPU of Apple silicon) can run tensors."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def accelerator_available() -> bool:
    """True when CUDA or Apple's MPS can run tensors."""
    return torch.cuda.is_available() or _mps_available()


def profile(name: str | None = None) -> Profile:
    """Return the active profile.

    ``name`` wins; otherwise the environment variable ``COURSE_PROFILE``; otherwise ``full``
    when a GPU is present and ``quick`` when not.
    """
    chosen = name if name is not None else os.environ.get(PROFILE_VARIABLE, "").strip()
    if not chosen:
        chosen = "full" if accelerator_available() else "quick"
    key = chosen.lower()
    if key not in PROFILES:
        source = "argument name" if name is not None else f"environment variable {PROFILE_VARIABLE}"
        raise ValueError(
            f"Unknown course profile {chosen!r} (from the {source}). "
            f"Expected one of {sorted(PROFILES)}: use 'quick' on a CPU or 'full' on a GPU, "
            f"e.g. `export {PROFILE_VARIABLE}=quick`."
        )
    return PROFILES[key]


DEVICE_TYPES = ("cpu", "cuda", "mps")
"""The kinds of device the course runs on."""


def _checked_device(value: object, source: str, fix: str) -> torch.device:
    """``value`` (from ``source``) as a ``torch.device`` this machine has, or a ``ValueError``
    ending with ``fix``, what to do instead."""
    names = "use cpu, cuda, cuda:N or mps"
    if not isinstance(value, (str, torch.device)):
        raise ValueError(
            f"{source}={value!r} is not a device name: expected a str or torch.device; {names}."
        )
    try:
        chosen = torch.device(value)
    except RuntimeError as error:  # torch's "Invalid device string"
        raise ValueError(f"{source}={value!r} is not a device name; {names}.") from error
    if chosen.type not in DEVICE_TYPES:
        raise ValueError(f"{source}={value!r} is not a device the course runs on; {names}.")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"{source}={value!r} asks for CUDA but this machine has no usable CUDA GPU; {fix}."
        )
    if chosen.type == "cuda" and chosen.index is not None:
        count = torch.cuda.device_count()
        if chosen.index >= count:
            raise ValueError(
                f"{source}={value!r} asks for GPU {chosen.index}, but this machine has {count} "
                f"(cuda:0 to cuda:{count - 1}); {fix}."
            )
    if chosen.type == "mps" and not _mps_available():
        raise ValueError(f"{source}={value!r} asks for Apple's MPS, which is not available; {fix}.")
    return chosen


def device(name: str | torch.device | None = None) -> torch.device:
    """Pick the device lessons run on: CUDA, then MPS, then CPU.

    ``name`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) wins; otherwise the environment
    variable ``COURSE_DEVICE`` (same names); otherwise the automatic choice. A name this
    machine cannot run raises ``ValueError``, never a device error later on.
    """
    if name is not None:
        return _checked_device(name, "device", "pass device=None for the automatic choice")
    forced = os.environ.get(DEVICE_VARIABLE, "").strip()
    if forced:
        return _checked_device(forced, DEVICE_VARIABLE, "unset the variable or set it to cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator with that seed.

    Course functions that draw random numbers take their own ``seed=`` or ``generator=``,
    so this is only for code written in the notebooks themselves.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def in_colab() -> bool:
    """True inside Google Colab (its module is imported by the Colab kernel)."""
    return "google.colab" in sys.modules


def colab_url(notebook: str) -> str:
    """The "Open in Colab" address of a lesson, e.g. ``colab_url("00_welcome.ipynb")``."""
    return f"https://colab.research.google.com/{REPOSITORY.replace('github.com', 'github')}/blob/main/notebooks/{notebook}"


def environment_summary() -> str:
    """One line: library versions, device, profile and whether this is Colab."""
    import torchvision

    from course_lib import __version__

    chosen = device()
    if chosen.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(chosen)})"
    else:
        where = chosen.type
    return (
        f"course_lib {__version__} | python {platform.python_version()} | "
        f"torch {torch.__version__} | torchvision {torchvision.__version__} | "
        f"device {where} | profile {profile().name} | colab {'yes' if in_colab() else 'no'}"
    )


@dataclass(frozen=True)
class Session:
    """What :func:`setup` chose for a lesson."""

    device: torch.device
    profile: Profile
    seed: int


def setup(seed: int = 0) -> Session:
    """The first call of every lesson: seed everything, choose device and profile, print them."""
    seed_everything(seed)
    session = Session(device=device(), profile=profile(), seed=seed)
    print(environment_summary())
    return session
