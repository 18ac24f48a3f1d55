"""Compressed models as ordinary checkpoints: a slimmed model stores its channel counts
(`extra["layer_shapes"]`, replayed on load by `Checkpoint.build`), a shared one its codebooks
(`extra["sharing"]`), a deployed one its folded batch norms (`extra["folded_batchnorm"]`); all
are plain data, so loading stays free of unpickled code."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from torch import nn

from axdnn.compress.sharing import LayerSharing
from axdnn.errors import CompressionError
from axdnn.models.checkpoint import Checkpoint, layer_shapes


def compressed_checkpoint(
    base: Checkpoint,
    model: nn.Module,
    *,
    pruning: Mapping | None = None,
    sharing: Mapping[str, LayerSharing] | None = None,
    folded: Mapping[str, str] | None = None,
    metrics: Mapping | None = None,
) -> Checkpoint:
    """A checkpoint of `model` (pruned, shared and/or batch-norm folded from `base`'s model) that
    loads like any other: same factory and arguments, the new weights, and what is needed to
    rebuild it."""
    if base.extra.get("plan") is not None:
        raise CompressionError(
            f"checkpoint {base.path!r} is an approximate (fine-tuned with a plan) model; "
            "compress the float checkpoint, then approximate and fine-tune the result"
        )
    extra = dict(base.extra)
    extra["layer_shapes"] = layer_shapes(model)
    if pruning is not None:
        extra["pruning"] = dict(pruning)
    if sharing is not None:
        extra["sharing"] = {n: s.to_dict() for n, s in sharing.items()}
    if folded:
        extra["folded_batchnorm"] = dict(folded)
    return dataclasses.replace(
        base,
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        metrics=dict(metrics or base.metrics),
        extra=extra,
        path=None,
    )
