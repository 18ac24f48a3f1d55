"""Error injection: error models, sites (module tensors and functional ops), the injector,
campaigns with planned statistics, and trial storage."""

from axdnn.inject.campaign import (
    CampaignConfig,
    CampaignPlan,
    CampaignResult,
    campaign_result,
    golden_predictions,
    plan_campaign,
    run_campaign,
)
from axdnn.inject.component import (
    ComponentSummary,
    activation_histograms,
    component_noise,
    product_moments,
)
from axdnn.inject.error_models import (
    AdditiveNoise,
    BitFlip,
    ComponentNoise,
    Draws,
    ErrorModel,
    Quantize,
    RandomValue,
    StuckAt,
    UniformNoise,
    ValueReplace,
    parse_error_model,
)
from axdnn.inject.functional import OpSites, list_op_sites, op_name
from axdnn.inject.injector import FaultPlan, Injector, SiteFaults, state_hash, weight_fault
from axdnn.inject.sites import Site, layer_sites, parse_site, site_shapes
from axdnn.inject.stats import (
    Interval,
    leveugle_sample_size,
    mean_interval,
    should_stop,
    wilson_interval,
)
from axdnn.inject.store import CampaignStore

__all__ = [
    "AdditiveNoise",
    "BitFlip",
    "CampaignConfig",
    "CampaignPlan",
    "CampaignResult",
    "CampaignStore",
    "ComponentNoise",
    "ComponentSummary",
    "Draws",
    "ErrorModel",
    "FaultPlan",
    "Injector",
    "Interval",
    "OpSites",
    "Quantize",
    "RandomValue",
    "Site",
    "SiteFaults",
    "StuckAt",
    "UniformNoise",
    "ValueReplace",
    "activation_histograms",
    "campaign_result",
    "component_noise",
    "golden_predictions",
    "layer_sites",
    "leveugle_sample_size",
    "list_op_sites",
    "mean_interval",
    "op_name",
    "parse_error_model",
    "parse_site",
    "plan_campaign",
    "product_moments",
    "run_campaign",
    "should_stop",
    "site_shapes",
    "state_hash",
    "weight_fault",
    "wilson_interval",
]
