from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.data import list_sources, parse_spec
from axdnn.data.spec import SOURCE_FORMS, parse_shape
from axdnn.errors import DataError


def test_list_sources_names_every_source():
    forms = list_sources()
    assert len(forms) == len(SOURCE_FORMS)
    for source in SOURCE_FORMS:
        assert any(f.startswith(source) for f in forms)


@pytest.mark.parametrize(
    ("text", "source", "path", "shape"),
    [
        ("digits", "digits", None, None),
        (" DIGITS:3x32x32 ", "digits", None, (3, 32, 32)),
        ("mnist:/data/mnist", "mnist", Path("/data/mnist"), None),
        ("mnist:/data/mnist:1X32X32", "mnist", Path("/data/mnist"), (1, 32, 32)),
        ("cifar10:rel/dir", "cifar10", Path("rel/dir"), None),
        ("cifar100:/d", "cifar100", Path("/d"), None),
        ("folder:/imgs", "folder", Path("/imgs"), None),
        ("folder:/imgs:1x20x24", "folder", Path("/imgs"), (1, 20, 24)),
        ("folder:C:/imgs", "folder", Path("C:/imgs"), None),  # drive letter is part of DIR
    ],
)
def test_parse_forms(text, source, path, shape):
    spec = parse_spec(text)
    assert (spec.source, spec.path, spec.shape) == (source, path, shape)
    assert spec.text == text.strip()


def test_parse_expands_home():
    assert parse_spec("mnist:~/x").path == Path("~/x").expanduser()


def test_parse_synthetic():
    spec = parse_spec("synthetic:3x8x8:5")
    assert (spec.shape, spec.classes, spec.samples) == ((3, 8, 8), 5, None)
    assert parse_spec("synthetic:1x4x6:2:100").samples == 100


def test_unknown_source_lists_accepted_forms():
    with pytest.raises(DataError) as err:
        parse_spec("imagenet:/x")
    message = str(err.value)
    assert "'imagenet'" in message
    for form in list_sources():
        assert form in message


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_spec(text):
    with pytest.raises(DataError, match="empty dataset spec"):
        parse_spec(text)


@pytest.mark.parametrize(
    "text",
    [
        "digits:3x32",
        "digits:2x8x8",
        "digits:0x8x8",
        "digits:1x0x8",
        "digits:abc",
        "folder:/d:3x32",
        "mnist:/d:32",
        "synthetic:3x0x8:4",
    ],
)
def test_bad_shape(text):
    with pytest.raises(DataError, match="bad shape") as err:
        parse_spec(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("synthetic", "bad synthetic"),
        ("synthetic:3x8x8", "bad synthetic"),
        ("synthetic:3x8x8:1", "class count"),
        ("synthetic:3x8x8:ten", "class count"),
        ("synthetic:3x8x8:4:0", "sample count"),
        ("synthetic:3x8x8:4:5:6", "bad synthetic"),
    ],
)
def test_bad_synthetic(text, what):
    with pytest.raises(DataError, match=what):
        parse_spec(text)


@pytest.mark.parametrize("text", ["mnist", "mnist:", "cifar10: ", "folder::3x8x8"])
def test_missing_directory(text):
    with pytest.raises(DataError, match="names no directory"):
        parse_spec(text)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([1, 3]),
    st.integers(1, 4096),
    st.integers(1, 4096),
    st.sampled_from(["x", "X"]),
)
def test_parse_shape_roundtrip(c, h, w, sep):
    assert parse_shape(f"{c}{sep}{h}{sep}{w}", "test") == (c, h, w)
