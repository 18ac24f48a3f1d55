import pytest

from axdnn.analysis import component_model_check, multiplier_costs, select_components
from axdnn.errors import InjectionError

# One multiplier per error family of the catalogue, chosen before measuring: truncation (biased,
# trunc:7), DRUM (unbiased, relative; both the unsigned and the signed operand path) and
# Mitchell's logarithmic multiplier (biased, relative; the unconditional model's worst mild case).
MULTIPLIERS = ["trunc:7@u8", "drum:5@u8", "drum:5@s8", "mitchell@u8"]


def test_cost_rules():
    costs, rule = multiplier_costs(["exact@u8", "drum:4@u8"])
    assert rule == "1-nmed" and costs["exact@u8"] == 1.0 and costs["drum:4@u8"] < 1.0
    costs, rule = multiplier_costs(["a", "b"], {"a": 2.0, "b": 1.0})
    assert rule == "given" and costs == {"a": 2.0, "b": 1.0}
    with pytest.raises(InjectionError):
        multiplier_costs(["a", "b"], {"a": 1.0})


def test_component_model_predicts_real_simulation_within_two_points(trained_cnn, digits):
    """Acceptance: for (at least) three multipliers on every layer of digits_cnn, the accuracy
    predicted by the component noise model is within 2 points of real table simulation."""
    calib = digits.train.tensors[0][:512]
    x, y = digits.test.tensors
    rows = component_model_check(trained_cnn, MULTIPLIERS, calib, x, y, repeats=5)
    for row in rows:
        assert abs(row["difference"]) <= 0.02, row
    # the multipliers do cost accuracy: the comparison is not between two unchanged models
    assert all(r["real_accuracy"] < r["float_accuracy"] for r in rows), rows
    assert max(r["float_accuracy"] - r["real_accuracy"] for r in rows) >= 0.05, rows


def test_select_components_verifies_the_choice(trained_cnn, digits):
    calib = digits.train.tensors[0][:256]
    x, y = digits.val.tensors
    result = select_components(
        trained_cnn,
        ["drum:4@u8", "trunc:7@u8"],
        calib,
        x[:120],
        y[:120],
        budget=0.03,
        repeats=2,
        verify_inputs=x[:120],
        verify_labels=y[:120],
    )
    assert set(result.choice) == {"features.0", "features.3", "features.7", "fc"}
    assert result.cost_rule == "1-nmed" and result.real_accuracy is not None
    assert result.baseline_accuracy - result.predicted_accuracy <= 0.03
    assert any(s is not None for s in result.choice.values())
    # the cheaper candidate is tried first in every layer
    assert result.steps[0]["multiplier"] == "drum:4@u8"
