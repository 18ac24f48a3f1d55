"""Neural approximation of code regions: regions (numpy function, input sampler, quality metric),
the AxBench kernels, small-MLP candidates and their architecture search under a quality bound."""

from axdnn.regions.region import (
    REGIONS,
    Region,
    get_region,
    image_diff,
    list_regions,
    mean_relative_error,
    miss_rate,
    register_region,
    topology_text,
)

__all__ = [
    "REGIONS",
    "Region",
    "get_region",
    "image_diff",
    "list_regions",
    "mean_relative_error",
    "miss_rate",
    "register_region",
    "topology_text",
]
