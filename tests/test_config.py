"""Profiles, devices, seeding and the environment summary (course_lib.config)."""

import random

import numpy as np
import pytest
import torch

from course_lib import config


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert config.profile().name == "full"
    monkeypatch.setenv("COURSE_PROFILE", "QUICK")
    assert config.profile().name == "quick"


def test_profile_default_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(config, "accelerator_available", lambda: False)
    assert config.profile().name == "quick"
    monkeypatch.setattr(config, "accelerator_available", lambda: True)
    assert config.profile().name == "full"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(
        ValueError, match=r"Unknown course profile 'fast'.*'full', 'quick'.*COURSE_PROFILE"
    ):
        config.profile()
    with pytest.raises(ValueError, match="argument name"):
        config.profile("medium")


def test_quick_profile_is_smaller_than_full():
    quick, full = config.PROFILES["quick"], config.PROFILES["full"]
    assert quick.train_steps < full.train_steps
    assert quick.eval_images < full.eval_images
    assert quick.samples < full.samples


def test_device_override(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "banana")
    with pytest.raises(ValueError, match="not a device name"):
        config.device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("COURSE_DEVICE", "cuda")
        with pytest.raises(ValueError, match="no usable CUDA"):
            config.device()


def test_device_without_override_is_usable(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    chosen = config.device()
    assert torch.ones(2, device=chosen).sum().item() == 2


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    generator = config.seed_everything(7)
    first = draw(), torch.rand(1, generator=generator).item()
    generator = config.seed_everything(7)
    second = draw(), torch.rand(1, generator=generator).item()
    assert first == second
    config.seed_everything(8)
    assert draw() != first[0]
    with pytest.raises(ValueError, match="non-negative int"):
        config.seed_everything(-1)


def test_environment_summary_is_one_line(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    line = config.environment_summary()
    assert "\n" not in line
    assert f"torch {torch.__version__}" in line
    assert "profile quick" in line
    assert "colab no" in line


def test_setup_prints_the_summary_and_returns_the_choices(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    session = config.setup(seed=3)
    assert session.profile.name == "quick"
    assert session.seed == 3
    assert "course_lib" in capsys.readouterr().out
