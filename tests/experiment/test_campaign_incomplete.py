"""A worker that finishes while another still holds blocks says its figures are incomplete."""

from axdnn.experiment.resilience import render_resilience
from axdnn.inject import CampaignConfig, CampaignStore, run_campaign


def test_a_worker_finishing_first_reports_incomplete(trained_cnn, digits, tmp_path):
    x, y = digits.test.tensors[0][:64], digits.test.tensors[1][:64]
    store = tmp_path / "c.db"
    config = CampaignConfig(name="shared", error_model="bitflip:float32", trials=200, block_size=50)
    other = CampaignStore(store)

    def another_worker_claims(block, _rows):
        if block == 0:
            assert other.claim("shared", "other-worker", lease_s=600) is not None

    result = run_campaign(trained_cnn, x, y, config, store, on_block=another_worker_claims)
    assert not result.complete and result.trials == 150 and result.planned == 200
    assert result.blocks["claimed"] == 1 and result.status == "running"
    record = {
        "checkpoint": "ck.pt",
        "data": "digits",
        "samples": 64,
        "sensitivity": {"baseline_accuracy": 1.0, "ranking": [],
                        "rank_stability": {"kendall_tau_mean": 1, "kendall_tau_p05": 1,
                                           "stable": True}},
        "campaign": result.to_dict(),
        "plots": {"sensitivity": "s.png"},
    }  # fmt: skip
    text = render_resilience(record)
    assert "INCOMPLETE: 150 of 200 trials stored, 1 block(s) still claimed" in text

    finished = run_campaign(trained_cnn, x, y, config, store)  # nothing left for this one
    assert not finished.complete  # the other worker's lease still holds its block


def test_workers_share_the_cores_and_restore_the_threads(trained_cnn, digits, tmp_path):
    import torch

    from axdnn.inject.campaign import share_cores

    before = torch.get_num_threads()
    try:
        share_cores(4, 2)
        assert torch.get_num_threads() == 2
        share_cores(4, 8)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    x, y = digits.test.tensors[0][:32], digits.test.tensors[1][:32]
    config = CampaignConfig(name="t", error_model="bitflip:float32", trials=64, block_size=16)
    run_campaign(trained_cnn, x, y, config, tmp_path / "t.db")
    assert torch.get_num_threads() == before
