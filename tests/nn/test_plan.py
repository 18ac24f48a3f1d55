import pytest
import torch
from torch import nn

from axdnn.errors import ConfigError, MultiplierError
from axdnn.nn import ApproxConv2d, LayerSpec, Plan, approximate


def small_model():
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.ReLU(),
        nn.Conv1d(2, 2, 1) if False else nn.Identity(),
        nn.Flatten(),
        nn.Linear(2 * 6 * 6, 3),
    )


def test_last_matching_pattern_wins_and_null_keeps_float():
    plan = Plan(layers={"*": LayerSpec(multiplier="drum:4"), "4": LayerSpec(multiplier=None)})
    approx = approximate(small_model(), plan, torch.randn(3, 1, 8, 8))
    assert isinstance(approx[0], ApproxConv2d)
    assert type(approx[4]) is nn.Linear
    exact = approx.approximation.exact
    assert [r.name for r in exact] == ["4"]
    assert "keeps it float" in exact[0].reason


def test_unnamed_layers_are_reported_exact_with_reason():
    approx = approximate(
        small_model(), Plan(layers={"0": LayerSpec(multiplier="mitchell")}), torch.randn(3, 1, 8, 8)
    )
    (record,) = approx.approximation.exact
    assert record.name == "4" and record.reason == "no plan pattern names it"


def test_pattern_matching_no_layer_lists_layer_names():
    with pytest.raises(ConfigError, match=r"matches no layer.*0, 4"):
        approximate(
            small_model(),
            Plan(layers={"conv*": LayerSpec(multiplier="exact")}),
            torch.randn(2, 1, 8, 8),
        )


def test_unsupported_layer_named_by_plan_is_an_error():
    model = nn.Sequential(nn.Conv1d(1, 2, 3))
    with pytest.raises(ConfigError, match="cannot approximate"):
        approximate(model, Plan.uniform("exact"), torch.randn(2, 1, 8))


def test_unknown_multiplier_is_rejected_at_validation():
    with pytest.raises((MultiplierError, ConfigError)):
        Plan.from_dict({"layers": {"*": {"multiplier": "nosuch:3"}}})


def test_unknown_key_is_rejected_with_its_location(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("layers:\n  '*': {multiplier: drum:4, colour: red}\n")
    with pytest.raises(ConfigError, match=r"plan\.yaml.*colour"):
        Plan.load(path)


def test_plan_round_trips_through_yaml_and_json(tmp_path):
    plan = Plan(layers={"*": LayerSpec(multiplier="drum:4", gradient="table"), "fc": LayerSpec()})
    for name in ("p.yaml", "p.json"):
        assert Plan.load(plan.save(tmp_path / name)) == plan


def test_missing_and_malformed_plan_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Plan.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Plan.load(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Plan.load(bad)


def test_flat_entries_become_typed_parts_and_flatten_again():
    from axdnn.nn import FormatSpec, MultiplierSpec

    spec = LayerSpec(multiplier="drum:4", gradient="table", backend="torch")
    assert isinstance(spec.compute, MultiplierSpec) and spec.compute.gradient == "table"
    fmt = LayerSpec(weight_format="fxp:s2.6")
    assert isinstance(fmt.compute, FormatSpec) and fmt.multiplier is None
    assert LayerSpec().compute is None and LayerSpec().model_dump() == {"multiplier": None}
    assert LayerSpec(**spec.model_dump()) == spec
    assert LayerSpec(parts=(MultiplierSpec(multiplier="drum:4"),)).multiplier == "drum:4"


def test_keys_of_an_absent_part_are_errors_naming_the_part():
    with pytest.raises(ConfigError, match=r"gradient \(a MultiplierSpec key\)"):
        LayerSpec(gradient="table")
    with pytest.raises(ConfigError, match="accepted keys"):
        Plan.from_dict({"layers": {"*": {"multipler": "drum:4"}}})


def test_plans_carry_their_format_version(tmp_path):
    plan = Plan.uniform("drum:4")
    assert plan.model_dump()["version"] == 1
    old = Plan.from_dict({"layers": {"*": {"multiplier": "drum:4"}}})  # files before versions
    assert old == plan
    with pytest.raises(ConfigError, match="version 2"):
        Plan.from_dict({"version": 2, "layers": {"*": {"multiplier": "drum:4"}}})


def test_a_new_spec_part_kind_is_loadable_once_registered(monkeypatch):
    from typing import ClassVar

    from axdnn.nn import SpecPart, register_spec_part
    from axdnn.nn import plan as plan_module

    class KeepSpec(SpecPart):
        slot: ClassVar[str] = "keep"
        trigger: ClassVar[tuple[str, ...]] = ("keep_ratio",)
        keep_ratio: float

    monkeypatch.setattr(plan_module, "SPEC_PARTS", list(plan_module.SPEC_PARTS))
    with pytest.raises(ConfigError, match="keep_ratio"):
        LayerSpec(multiplier="drum:4", keep_ratio=0.5)
    register_spec_part(KeepSpec)
    spec = LayerSpec(multiplier="drum:4", keep_ratio=0.5)
    assert spec.part("keep").keep_ratio == 0.5 and spec.multiplier == "drum:4"
    assert LayerSpec(**spec.model_dump()) == spec
    with pytest.raises(ConfigError, match="reuses plan key"):
        register_spec_part(type("Clash", (KeepSpec,), {"__annotations__": {"gradient": str}}))
