"""End-to-end: `axdnn train` with truncated-precision storage, data-parallel workers and gradient
compression; the `train` step with a precision file in `axdnn run`, and its report section."""

import pytest
import yaml
from cli_support import assert_clean_error, run_cli, run_json

from axdnn.models.checkpoint import load_checkpoint


def test_train_truncated_and_compressed_on_two_workers(capsys, tmp_path):
    out = tmp_path / "model.pt"
    record = run_json(
        capsys, "train", "--model", "digits_cnn", "--epochs", "1", "--truncate", "4",
        "--workers", "2", "--compressor", "topk", "--compress-ratio", "0.05", "--device", "cpu",
        "--batch-size", "256",
        "--out", str(out), "-q",
    )  # fmt: skip
    assert record["parallel"]["workers"] == 2 and record["parallel"]["ranks_identical"]
    assert record["parallel"]["communication"]["compression_ratio"] > 9
    assert record["memory_energy"]["saved_vs_fp32"] == pytest.approx(1 - 12 / 32)
    assert record["approx_training"]["precision"]["weights"] == "fp16,trunc=4"
    assert record["test"]["samples"] == 359
    checkpoint = load_checkpoint(out)
    assert checkpoint.extra["approx_training"]["compression"]["compressor"] == "topk"
    code, text, _ = run_cli(
        capsys, "train", "--model", "digits_cnn", "--epochs", "1", "--train-format",
        "fxp:s1.7,round=stochastic", "--scaling", "tensor", "--batch-size", "256",
        "--out", str(tmp_path / "sr.pt"), "-q",
    )  # fmt: skip
    assert code == 0 and "memory energy (dram): 75.0% saved vs fp32" in text


def test_train_step_with_a_precision_file_and_its_report(capsys, tmp_path):
    (tmp_path / "precision.yaml").write_text(
        yaml.safe_dump({"weights": "fp16,trunc=2", "activations": "bf16", "layers": {"fc": {}}})
    )
    file = tmp_path / "exp.yaml"
    file.write_text(
        "name: approx-train\nmodel: digits_cnn\ndata: digits\ndevice: cpu\nsteps:\n"
        "  - kind: train\n    epochs: 1\n    precision: precision.yaml\n    act_format: fp16\n"
    )
    result = run_json(capsys, "run", str(file), "--out", str(tmp_path / "run"), "-q")
    html = (tmp_path / "run" / "report.html").read_text()
    assert result["steps"][0]["ran"]
    assert "approximate training" in html and "fp16,trunc=2" in html
    assert "memory traffic per training step" in html


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--compressor", "topk"], "workers"),
        (["--truncate", "2", "--train-format", "bf16"], "either truncate"),
        (["--weight-format", "fp17"], "fp17"),
        (["--compressor", "qsgd", "--workers", "2"], "compressor"),
    ],
)
def test_bad_approximate_training_options_are_clean_errors(capsys, tmp_path, args, needle):
    result = run_cli(
        capsys, "train", "--model", "digits_cnn", "--epochs", "1", *args,
        "--out", str(tmp_path / "m.pt"), "-q",
    )  # fmt: skip
    assert_clean_error(result, needle)
