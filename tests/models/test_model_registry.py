"""Model registry: registration, user factories by module and file path, and every error path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from axdnn.errors import AxError, ModelError
from axdnn.models import build_model, list_models, register_model, registry

FACTORY_SOURCE = textwrap.dedent(
    """
    from torch import nn

    class Net(nn.Module):
        def __init__(self, in_channels, num_classes, hidden=4):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(hidden, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.conv(x)).flatten(1))

    def make(in_channels, num_classes, hidden=4):
        return Net(in_channels, num_classes, hidden)

    class Holder:
        make = staticmethod(make)

    def not_a_module(in_channels, num_classes):
        return [in_channels, num_classes]

    def broken(in_channels, num_classes):
        raise RuntimeError("kaboom")

    CONSTANT = 3
    """
)


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A copy of the registry so test registrations do not leak."""
    copy = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", copy)
    monkeypatch.setattr(registry, "_LEARNING_RATES", dict(registry._LEARNING_RATES))
    return copy


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "user_net.py"
    path.write_text(FACTORY_SOURCE)
    return path


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "axdnn_test_userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "axdnn_test_userpkg.nets"


def _check_net(model: nn.Module, in_channels: int, num_classes: int, hidden: int = 4) -> None:
    assert isinstance(model, nn.Module)
    assert model.conv.in_channels == in_channels and model.conv.out_channels == hidden
    assert model(torch.zeros(2, in_channels, 6, 6)).shape == (2, num_classes)


def test_register_and_build(isolated_registry: dict) -> None:
    @register_model("tiny_test_net")
    def tiny(in_channels: int, num_classes: int, width: int = 2) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 4 * width, num_classes))

    assert "tiny_test_net" in list_models()
    assert tiny.__name__ == "tiny"  # the decorator returns the factory itself
    model = build_model("tiny_test_net", 1, 5, width=1)
    assert model(torch.zeros(3, 1, 2, 2)).shape == (3, 5)


def test_register_same_factory_twice_is_idempotent(isolated_registry: dict) -> None:
    def f(in_channels: int, num_classes: int) -> nn.Module:
        return nn.Identity()

    register_model("twice")(f)
    register_model("twice")(f)
    assert list_models().count("twice") == 1


def test_register_duplicate_name_is_an_error(isolated_registry: dict) -> None:
    with pytest.raises(ModelError, match="resnet20.*already registered"):
        register_model("resnet20")(lambda in_channels, num_classes: nn.Identity())


@pytest.mark.parametrize("bad", ["", "a:b", " x", 3])
def test_register_rejects_bad_names(bad: object) -> None:
    with pytest.raises(ModelError, match="invalid model name"):
        register_model(bad)  # type: ignore[arg-type]


def test_user_factory_from_module(factory_module: str) -> None:
    _check_net(build_model(f"{factory_module}:make", 2, 3), 2, 3)
    _check_net(build_model(f"{factory_module}:Net", 1, 4, hidden=6), 1, 4, hidden=6)
    _check_net(build_model(f"{factory_module}:Holder.make", 3, 2), 3, 2)


def test_user_factory_from_file(factory_file: Path) -> None:
    _check_net(build_model(f"{factory_file}:make", 3, 10, hidden=5), 3, 10, hidden=5)
    _check_net(build_model(f"{factory_file}:Net", 1, 2), 1, 2)


def test_user_factory_from_relative_file(
    factory_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(factory_file.parent.parent)
    rel = f"{factory_file.parent.name}/{factory_file.name}"
    _check_net(build_model(f"{rel}:make", 1, 3), 1, 3)


def test_unknown_model_lists_registered_and_suggests() -> None:
    with pytest.raises(ModelError) as info:
        build_model("resnet21", 3, 10)
    msg = str(info.value)
    assert "'resnet21'" in msg and "Did you mean" in msg
    for name in list_models():
        assert name in msg
    assert isinstance(info.value, AxError)


def test_missing_file(tmp_path: Path) -> None:
    spec = f"{tmp_path / 'nope.py'}:make"
    with pytest.raises(ModelError, match="does not exist") as info:
        build_model(spec, 3, 10)
    assert "nope.py" in str(info.value) and "resnet20" in str(info.value)


def test_missing_module() -> None:
    with pytest.raises(ModelError, match="cannot import module 'no_such_pkg_axdnn.nets'") as info:
        build_model("no_such_pkg_axdnn.nets:make", 3, 10)
    assert "resnet20" in str(info.value)


@pytest.mark.parametrize("attr", ["missing", "Holder.missing"])
def test_missing_attribute(factory_file: Path, factory_module: str, attr: str) -> None:
    for target in (str(factory_file), factory_module):
        with pytest.raises(ModelError, match=f"no attribute '{attr}'") as info:
            build_model(f"{target}:{attr}", 3, 10)
        assert "make" in str(info.value) and "digits_cnn" in str(info.value)


def test_not_callable(factory_file: Path) -> None:
    with pytest.raises(ModelError, match="'CONSTANT' is of type int, not callable"):
        build_model(f"{factory_file}:CONSTANT", 3, 10)


def test_factory_returning_non_module(factory_file: Path) -> None:
    with pytest.raises(ModelError, match="returned list, not a torch.nn.Module"):
        build_model(f"{factory_file}:not_a_module", 3, 10)


def test_factory_raising_is_wrapped(factory_file: Path) -> None:
    with pytest.raises(ModelError, match="RuntimeError: kaboom") as info:
        build_model(f"{factory_file}:broken", 3, 10)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_bad_kwargs_for_zoo_model() -> None:
    with pytest.raises(ModelError, match="zoo model 'resnet20' failed.*depth_multiplier"):
        build_model("resnet20", 3, 10, depth_multiplier=2)


def test_file_that_fails_to_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad_syntax.py"
    bad.write_text("def make(:\n")
    with pytest.raises(ModelError, match="executing .*bad_syntax.py.* failed: SyntaxError"):
        build_model(f"{bad}:make", 3, 10)


@pytest.mark.parametrize("spec", [":make", "some.module:", ""])
def test_malformed_specs(spec: str) -> None:
    with pytest.raises(ModelError) as info:
        build_model(spec, 3, 10)
    assert repr(spec) in str(info.value)


@pytest.mark.parametrize(
    ("in_channels", "num_classes", "bad"),
    [
        (0, 10, "in_channels=0"),
        (3, -1, "num_classes=-1"),
        (True, 10, "in_channels=True"),
        (3, 2.5, "num_classes=2.5"),
    ],
)
def test_bad_channel_and_class_counts(in_channels: object, num_classes: object, bad: str) -> None:
    with pytest.raises(ModelError, match=bad):
        build_model("resnet20", in_channels, num_classes)  # type: ignore[arg-type]


def test_default_learning_rate(isolated_registry: dict) -> None:
    @register_model("with_lr", lr=5e-4)
    def with_lr(in_channels: int, num_classes: int) -> nn.Module:
        return nn.Linear(in_channels, num_classes)

    assert registry.default_lr("with_lr") == 5e-4
    assert registry.default_lr("pkg.module:factory") == registry.DEFAULT_LR
