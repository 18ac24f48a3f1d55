"""Plans carry pruning and sharing per layer beside a multiplier or formats (issue 15 item 3)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import ConfigError
from axdnn.nn import Plan, approximate


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10)
    ).eval()


CALIB = torch.rand(32, 1, 6, 6)


def test_one_layer_combines_a_multiplier_pruning_and_sharing():
    plan = Plan.from_dict(
        {"layers": {"0": {"multiplier": "drum:4", "prune": 0.5, "share": 4}, "3": {"prune": 0.25}}}
    )
    net = _net()
    approx = approximate(net, plan, CALIB)
    conv, fc = approx[0], approx[3]
    assert (conv.weight == 0).float().mean() >= 0.5
    nonzero = conv.weight[conv.weight != 0].unique()
    assert len(conv.weight.unique()) <= 4 and len(nonzero) <= 4
    assert (fc.weight == 0).float().mean() == pytest.approx(0.25, abs=1 / fc.weight.numel())
    records = {r.name: r for r in approx.approximation.layers}
    assert records["0"].status == "approximate" and records["0"].multiplier == "drum:4"
    assert records["0"].compression == {"pruned": 0.5, "shared_k": 4}
    assert records["3"].status == "exact" and records["3"].compression == {"pruned": 0.25}
    assert torch.count_nonzero(net[0].weight) == net[0].weight.numel()  # the original untouched


def test_the_plan_file_round_trips_the_parts(tmp_path):
    plan = Plan.from_dict(
        {"layers": {"*": {"weight_format": "fxp:s2.6", "prune": 0.3, "share": 8}}}
    )
    loaded = Plan.load(plan.save(tmp_path / "plan.yaml"))
    assert loaded == plan
    spec = loaded.layers["*"]
    assert {p.slot for p in spec.parts} == {"compute", "pruning", "sharing"}


@pytest.mark.parametrize(
    "entry,needle",
    [({"prune": 1.0}, "prune"), ({"share": 0}, "share"), ({"prune_structured": True}, "prune")],
)
def test_bad_parts_are_config_errors(entry, needle):
    with pytest.raises(ConfigError, match=needle):
        Plan.from_dict({"layers": {"*": entry}})


def test_pruned_and_shared_weights_stay_so_under_fine_tuning_and_reload():
    plan = Plan.from_dict({"layers": {"*": {"multiplier": "drum:4", "prune": 0.5, "share": 4}}})
    approx = approximate(_net(), plan, CALIB).train()
    zeros = approx[0].weight == 0
    opt = torch.optim.SGD(approx.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(approx(CALIB), torch.arange(32) % 10).backward()
        opt.step()
    approx.eval()
    with torch.no_grad():
        out = approx(CALIB)
    assert torch.equal(approx[0].weight == 0, zeros) or (approx[0].weight[zeros] == 0).all()
    assert len(approx[0].weight.unique()) <= 4
    fresh = approximate(_net(), plan, None)
    fresh.load_state_dict(approx.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh.eval()(CALIB), out)


def test_the_cost_model_counts_shared_weights_as_indices_plus_a_codebook():
    from axdnn.cost import count_ops, estimate_energy, precision_from_model

    plan = Plan.from_dict(
        {"layers": {"0": {"multiplier": "drum:4", "share": 4}, "3": {"share": 16}}}
    )
    approx = approximate(_net(), plan, CALIB)
    ops = count_ops(_net(), (1, 6, 6))
    layers = {r.name: r for r in estimate_energy(ops, precision_from_model(approx)).layers}
    conv, fc = approx[0].weight.numel(), approx[3].weight.numel()
    assert layers["0"].weight_bits_moved == conv * 2 + 4 * 8  # 2 index bits, 4 8-bit values
    assert layers["3"].weight_bits_moved == fc * 4 + 16 * 32  # float layer: fp32 codebook
    plain = {r.name: r for r in estimate_energy(ops, precision_from_model(_net())).layers}
    assert layers["3"].memory_pj < plain["3"].memory_pj
