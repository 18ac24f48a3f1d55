"""End-to-end: `axdnn train` on real Fashion-MNIST (the fixed subset) and its absent-data error."""

from cli_support import assert_clean_error, run_cli, run_json

from axdnn.models import default_lr


def test_train_lenet5_on_fashion_mnist_subset(capsys, tmp_path, fashion_subset):
    record = run_json(
        capsys,
        "train",
        "--model",
        "lenet5",
        "--data",
        f"fashion-mnist:{fashion_subset}",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "lenet.pt"),
        "-q",
    )
    assert record["config"]["lr"] == default_lr("lenet5") == 3e-3  # the model's own rate
    assert record["data"]["class_names"][0] == "T-shirt/top"
    assert record["test"]["samples"] == 1000
    # 1,800 training images, 2 epochs: far above chance (10%), far below the full set's ~89%
    assert 0.6 < record["test"]["top1"] < 0.9
    evaluated = run_json(capsys, "evaluate", "--checkpoint", str(tmp_path / "lenet.pt"), "-q")
    assert evaluated["runs"][0]["top1"] == record["test"]["top1"]


def test_absent_fashion_mnist_is_a_clean_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AXDNN_DATA", str(tmp_path))
    result = run_cli(
        capsys,
        "train",
        "--model",
        "lenet5",
        "--data",
        "fashion-mnist",
        "--out",
        str(tmp_path / "x.pt"),
        "-q",
    )
    assert_clean_error(result, "apt-get install dataset-fashion-mnist")
    assert str(tmp_path / "fashion-mnist") in result[2]


def test_train_help_lists_fashion_mnist(capsys):
    code, text, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "fashion-mnist" in text
