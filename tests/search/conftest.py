"""Exploration fixtures: a digits_cnn checkpoint trained through the CLI, and a small space."""

import uuid

import pytest

from axdnn.cli import main

SPACE = {
    "groups": [{"layers": ["*"], "multiplier": ["exact@u8", "exact@u6", "exact@u4"],
                "formats": ["fxp:s2.4"]}],
    "constraints": {"max_drop": 0.02},
}  # fmt: skip
"""4 options on each of digits_cnn's 4 layers: 256 candidates."""


@pytest.fixture(scope="session")
def explore_checkpoint(tmp_path_factory):
    """A digits_cnn trained for a few epochs (float; the model every exploration test explores)."""
    path = tmp_path_factory.mktemp("explore-ck") / "digits.pt"
    args = ["train", "--model", "digits_cnn", "--data", "digits", "--epochs", "4"]
    assert main([*args, "--out", str(path), "-q"]) == 0
    return path


@pytest.fixture
def study_name(request):
    """A study name no other test (or earlier run on the same database) uses."""
    return f"{request.node.originalname}-{uuid.uuid4().hex[:8]}"
