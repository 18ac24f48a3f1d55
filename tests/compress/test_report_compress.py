"""The prune and share report sections render full records and survive partial ones."""

import pytest

from axdnn.report.html import ReportContext, renderer_for

PRUNE = {
    "model": "digits_cnn", "checkpoint": "p.pt", "accuracy_before": 0.98, "accuracy_after": 0.9,
    "reload_identical": True,
    "pruning": {"criterion": "l1", "ratio": 0.5, "global_pruning": False, "steps": 1,
                "macs_before": 600, "macs_after": 150, "macs_ratio": 4.0, "params_before": 40,
                "params_after": 10, "params_ratio": 4.0,
                "layers": [{"name": "features.0", "before": 16, "after": 8}]},
}  # fmt: skip
SHARE = {
    "model": "lenet5", "checkpoint": "s.pt", "accuracy_before": 0.89, "accuracy_after": 0.888,
    "drop": 0.002, "ks": {"fc1": 4},
    "cost": {"compression_ratio": 6.8, "dense_weight_bits": 100, "shared_weight_bits": 15,
             "codebook_lookups": 48000, "layers": [{"name": "fc1", "memory_bits": 96064}]},
    "search": {"baseline_accuracy": 0.9, "budget": 0.005, "bits": 16, "layers": {"fc1": 48000},
               "sensitivity": {"fc1": 4},
               "trials": [{"number": 0, "compression_ratio": 6.8, "accuracy": 0.899,
                           "drop": 0.001, "feasible": True},
                          {"number": 1, "compression_ratio": 8.0, "accuracy": 0.8,
                           "drop": 0.1, "feasible": False}]},
}  # fmt: skip


def _context():
    return ReportContext.__new__(ReportContext)


@pytest.mark.parametrize(("kind", "record", "needles"), [
    ("prune", PRUNE, ["filters after", "features.0", "MACs ratio"]),
    ("share", SHARE, ["per-layer k", "fc1", "<svg", "codebook lookups"]),
])  # fmt: skip
def test_sections_render(kind, record, needles):
    section = renderer_for(kind)({"name": kind, "record": record}, _context())
    html = "".join(str(part) for part in vars(section).values())
    for needle in needles:
        assert needle in html


@pytest.mark.parametrize("kind", ["prune", "share"])
def test_sections_survive_empty_records(kind):
    section = renderer_for(kind)({"name": kind, "record": {}}, _context())
    assert "no layers" in str(vars(section)) or "no trials" in str(vars(section))
