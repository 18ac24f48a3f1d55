import pytest

from axdnn.cli import main


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory):
    """A digits_cnn trained for a few epochs through the CLI itself."""
    path = tmp_path_factory.mktemp("ck") / "digits.pt"
    assert (
        main(
            [
                "train",
                "--model",
                "digits_cnn",
                "--data",
                "digits",
                "--epochs",
                "4",
                "--out",
                str(path),
                "-q",
            ]
        )
        == 0
    )
    return path


@pytest.fixture()
def corrupt_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    return path
