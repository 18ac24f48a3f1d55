"""Spaces: YAML and Python forms, catalogue filters, groups and tied layers, the choice-kind
registry, and the errors bad spaces raise."""

import pytest

from axdnn.arith import catalogue
from axdnn.errors import SearchError
from axdnn.nn import LayerSpec, Plan
from axdnn.search import CHOICES, ChoiceKind, Option, Space, catalogue_specs, register_choice

LAYERS = ["conv1", "conv2", "fc1", "fc2"]


def test_yaml_space_binds_one_decision_per_layer(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "space:\n  groups:\n    - layers: ['*']\n      multiplier: [exact@u8, exact@u4, float]\n"
        "      formats: [fxp:s2.4, {weight: fxp:s1.3}]\n  constraints: {max_drop: 0.02}\n"
    )
    space = Space.load(path)
    bound = space.bind(LAYERS)
    params = bound.params()
    assert list(params) == [f"{n}:arith" for n in LAYERS]
    assert params["conv1:arith"] == [
        "exact@u8", "exact@u4", "float", "w=fxp:s2.4,a=fxp:s2.4", "w=fxp:s1.3,a=float",
    ]  # fmt: skip
    assert bound.size() == 5**4
    assert space.constraints.max_drop == 0.02


def test_candidate_becomes_a_plan_with_each_layers_choice():
    bound = Space.uniform(["exact@u8", "exact@u4"], reference="exact@u8").bind(LAYERS)
    params = {"conv1:arith": "exact@u4", "conv2:arith": "exact@u8",
              "fc1:arith": "exact@u8", "fc2:arith": "exact@u4"}  # fmt: skip
    plan = bound.to_plan(params)
    assert isinstance(plan, Plan)
    assert plan.resolve(LAYERS)["conv1"][1] == LayerSpec(multiplier="exact@u4")
    assert plan.resolve(LAYERS)["conv2"][1].multiplier == "exact@u8"
    assert Plan.from_dict(plan.model_dump()) == plan  # what `axdnn evaluate --plan` loads
    with pytest.raises(SearchError, match="accepted"):
        bound.to_plan({**params, "fc2:arith": "drum:4@u8"})


def test_catalogue_filter_selects_by_metric():
    rows = {r["spec"]: r["metrics"] for r in catalogue(8, False)}
    chosen = catalogue_specs("mae_percent < 1 and er_percent > 50", 8)
    expected = [s for s, m in rows.items() if m["mae_percent"] < 1 and m["er_percent"] > 50]
    assert chosen == expected and 0 < len(chosen) < len(rows)
    space = Space.uniform([{"where": "mae_percent < 1 and er_percent > 50", "width": 8}])
    assert space.bind(["a"]).params()["a:arith"] == expected


@pytest.mark.parametrize(
    ("choice", "needle"),
    [
        ({"where": "snr > 3"}, "unknown metric 'snr'"),
        ({"where": "mae_percent ~ 3"}, "bad catalogue filter term"),
        ({"where": "mae_percent < -1"}, "matches no multiplier"),
        ({"filter": "mae_percent < 1"}, "key 'where'"),
        ("drum:99@u8", "drum"),
    ],
)
def test_bad_multiplier_choices_name_the_value(choice, needle):
    with pytest.raises(SearchError, match=needle):
        Space.from_dict({"groups": [{"layers": ["*"], "multiplier": [choice]}]})


def test_bad_spaces_are_clear_errors(tmp_path):
    with pytest.raises(SearchError, match="'pruning' is unknown; accepted keys: name, layers"):
        Space.from_dict({"groups": [{"pruning": [0.5]}]})
    with pytest.raises(SearchError, match="gives no choices"):
        Space.from_dict({"groups": [{"layers": ["*"]}]})
    with pytest.raises(SearchError, match="bad formats choice"):
        Space.from_dict({"groups": [{"formats": ["fxp:nonsense"]}]})
    with pytest.raises(SearchError, match="max_drop"):
        Space.from_dict({"groups": [{"multiplier": ["exact@u8"]}], "constraints": {"max_drop": 2}})
    with pytest.raises(SearchError, match="does not exist"):
        Space.load(tmp_path / "missing.yaml")
    with pytest.raises(SearchError, match="matches no layer; the model's layers are: conv1"):
        Space.from_dict({"groups": [{"layers": ["head*"], "multiplier": ["exact@u8"]}]}).bind(
            ["conv1"]
        )


def test_tied_group_is_one_decision_and_later_groups_take_layers():
    space = Space.from_dict(
        {
            "groups": [
                {"layers": ["*"], "multiplier": ["exact@u8", "exact@u6"]},
                {"name": "head", "layers": ["fc*"], "tied": True, "multiplier": ["exact@u4"]},
            ]
        }
    )
    bound = space.bind(LAYERS)
    assert list(bound.params()) == ["conv1:arith", "conv2:arith", "head:arith"]
    plan = bound.to_plan({"conv1:arith": "exact@u6", "conv2:arith": "exact@u8",
                          "head:arith": "exact@u4"})  # fmt: skip
    chosen = plan.resolve(LAYERS)
    assert chosen["fc1"][1].multiplier == chosen["fc2"][1].multiplier == "exact@u4"


def test_a_registered_choice_kind_is_an_independent_axis():
    def accumulators(value, where):
        return [Option(f"acc{b}", (("acc_bits", int(b)),)) for b in value]

    register_choice(ChoiceKind("acc_bits", "accumulator", accumulators))
    try:
        space = Space.from_dict({"groups": [{"multiplier": ["exact@u8"], "acc_bits": [16, 32]}]})
        bound = space.bind(["conv1"])
        assert bound.params() == {
            "conv1:arith": ["exact@u8"],
            "conv1:accumulator": ["acc16", "acc32"],
        }
        plan = bound.to_plan({"conv1:arith": "exact@u8", "conv1:accumulator": "acc16"})
        assert plan.model_dump()["layers"]["conv1"]["acc_bits"] == 16
        with pytest.raises(SearchError, match="already registered"):
            register_choice(ChoiceKind("acc_bits", "x", accumulators))
    finally:
        CHOICES.pop("acc_bits")
