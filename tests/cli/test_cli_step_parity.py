"""Every command that has an experiment step builds that step's config and runs it: for the same
settings, `axdnn <command> --json` and the step in `axdnn run` give the same record (up to where
files go and how long it took)."""

import json

import pytest
import yaml
from cli_support import assert_clean_error, run_cli, run_json

from axdnn.experiment.runner import run_experiment, step_records

TIMING = ("seconds", "time", "timing", "elapsed", "started", "finished", "speedup", "latency")


def normalised(value, paths):
    """The record with timings dropped and the given file paths replaced by their labels."""
    if isinstance(value, dict):
        return {
            k: normalised(v, paths) for k, v in value.items() if not any(t in k for t in TIMING)
        }
    if isinstance(value, list):
        return [normalised(v, paths) for v in value]
    if isinstance(value, str):
        for path, label in paths.items():
            value = value.replace(str(path), label)
    return value


def _differences(a, b, where="record"):
    """Where two records differ (key paths), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{where}[{i}]")
        ]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"[:300]]


def cases(ck, tmp):
    """(step settings, command-line arguments) pairs with the same meaning."""
    return {
        "train": (
            {"model": "digits_cnn", "epochs": 1, "batch_size": 128},
            ["train", "--model", "digits_cnn", "--epochs", "1", "--batch-size", "128",
             "--out", str(tmp / "cli" / "model.pt"), "-q"],
        ),
        "evaluate": (
            {"checkpoint": str(ck), "multipliers": ["drum:4@u8"], "batch_size": 128},
            ["evaluate", "--checkpoint", str(ck), "--multiplier", "drum:4@u8",
             "--batch-size", "128", "-q"],
        ),
        "cost": ({"checkpoint": str(ck)}, ["cost", "--checkpoint", str(ck)]),
        "finetune": (
            {"checkpoint": str(ck), "multiplier": "trunc:8@u8", "epochs": 1},
            ["finetune", "--checkpoint", str(ck), "--multiplier", "trunc:8@u8", "--epochs", "1",
             "--out", str(tmp / "cli" / "finetuned.pt"), "-q"],
        ),
        "resilience": (
            {"checkpoint": str(ck), "magnitudes": [1.0], "repeats": 1, "limit": 64},
            ["resilience", "--checkpoint", str(ck), "--magnitudes", "1", "--repeats", "1",
             "--limit", "64", "--out", str(tmp / "cli")],
        ),
        "significance": (
            {"checkpoint": str(ck), "layers": ["features.0"], "fractions": [0.25], "limit": 64},
            ["significance", "--checkpoint", str(ck), "--layer", "features.0", "--fractions",
             "0.25", "--limit", "64", "--out", str(tmp / "cli")],
        ),
        "prune": (
            {"checkpoint": str(ck), "ratio": 0.5},
            ["prune", "--checkpoint", str(ck), "--ratio", "0.5",
             "--out", str(tmp / "cli" / "pruned.pt"), "-q"],
        ),
        "share": (
            {"checkpoint": str(ck), "trials": 6, "k_max": 16, "population": 4},
            ["share", "--checkpoint", str(ck), "--trials", "6", "--k-max", "16",
             "--population", "4", "--out", str(tmp / "cli" / "shared.pt"), "-q"],
        ),
        "explore": (
            {"checkpoint": str(ck), "space": str(tmp / "space.yaml"), "strategy": "random",
             "trials": 2, "subset": 40},
            ["explore", "--checkpoint", str(ck), "--space", str(tmp / "space.yaml"),
             "--strategy", "random", "--trials", "2", "--subset", "40", "--out", str(tmp / "cli"),
             "-q"],
        ),
        "regions": (
            {"regions": ["inversek2j"], "trials": 2, "samples": 256, "held_out": 128,
             "test": 128, "epochs": 3, "depths": [0, 1], "widths": [2, 4]},
            ["regions", "search", "inversek2j", "--trials", "2", "--samples", "256",
             "--held-out", "128", "--test", "128", "--epochs", "3", "--depths", "0,1",
             "--widths", "2,4", "--out", str(tmp / "cli"), "-q"],
        ),
        "multipliers": (
            {"specs": ["mitchell@u8", "drum:4@u8"]},
            ["multipliers", "show", "mitchell@u8", "drum:4@u8", "--out", str(tmp / "cli")],
        ),
        "dynamic": (
            {"checkpoint": str(ck), "configs": ["exit"], "train_limit": 300, "calib_limit": 100,
             "test_limit": 100, "timing_batches": [1, 32], "timing_samples": 8},
            ["dynamic", "--checkpoint", str(ck), "--config", "exit", "--train-limit", "300",
             "--calib-limit", "100", "--test-limit", "100", "--timing-batch", "1,32",
             "--timing-samples", "8", "--out", str(tmp / "cli"), "-q"],
        ),
        "redcane": (
            {"checkpoint": str(ck), "magnitudes": [0.5], "means": [], "repeats": 1, "limit": 40,
             "calib_limit": 32, "candidates": ["drum:4@u8"]},
            ["redcane", "--checkpoint", str(ck), "--magnitudes", "0.5", "--means", "",
             "--repeats", "1", "--limit", "40", "--calib-limit", "32", "--multiplier",
             "drum:4@u8", "--out", str(tmp / "cli"), "-q"],
        ),
    }  # fmt: skip


SPACE = {"groups": [{"layers": ["*"], "multiplier": ["exact@u8", "exact@u4"]}]}


@pytest.fixture(scope="module")
def parity(tmp_path_factory, digits_checkpoint):
    tmp = tmp_path_factory.mktemp("parity")
    (tmp / "space.yaml").write_text(yaml.safe_dump(SPACE))
    table = cases(digits_checkpoint, tmp)
    steps = [{"kind": kind, **settings} for kind, (settings, _) in table.items()]
    assert sorted(table) == sorted(KINDS)
    file = tmp / "exp.yaml"
    file.write_text(yaml.safe_dump({"name": "parity", "steps": steps}))
    run_experiment(file, tmp / "run", progress=False, say=lambda _: None, report=False)
    return tmp, table, step_records(tmp / "run")


KINDS = ["train", "evaluate", "cost", "finetune", "resilience", "significance", "prune", "share",
         "explore", "regions", "multipliers", "dynamic", "redcane"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_command_and_step_give_the_same_record(capsys, parity, kind):
    tmp, table, records = parity
    cli = run_json(capsys, *table[kind][1])
    steps = tmp / "run" / "steps"
    paths = {steps / kind: "<out>", tmp / "cli": "<out>"}
    left, right = normalised(cli, paths), normalised(records[kind], paths)
    assert _differences(left, right) == []
    assert json.dumps(normalised(cli, paths), sort_keys=True)  # plain JSON both ways


def test_command_options_fail_like_the_step_settings(capsys, digits_checkpoint):
    ck = str(digits_checkpoint)
    assert_clean_error(run_cli(capsys, "evaluate", "--checkpoint", ck, "--batch-size", "0"),
                       "--batch-size")  # fmt: skip
    assert_clean_error(run_cli(capsys, "evaluate", "--checkpoint", ck, "--split", "dev"), "--split")
    assert_clean_error(run_cli(capsys, "cost", "--checkpoint", ck, "--memory", "hbm"), "--memory")
    assert_clean_error(
        run_cli(capsys, "evaluate", "--checkpoint", "${train.checkpoint}"), "experiment files"
    )
