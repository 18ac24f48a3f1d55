"""Batch norm folded into the conv or linear layer that feeds it (inference form): the layer's
weights and bias absorb the normalisation, the batch norm becomes `nn.Identity`, and the model
stays its own class, so a checkpoint of it reloads by naming the folds
(`extra["folded_batchnorm"]`, replayed by `Checkpoint.build`).

The arithmetic is torch's own (`torch.nn.utils.fusion.fuse_conv_bn_eval` /
`fuse_linear_bn_eval`); which pairs may fold is read from a torch.fx trace: the batch norm's
only input is a layer's output that nothing else uses, and each module is called once."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from axdnn.errors import CompressionError

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def fold_batchnorm(
    model: nn.Module, input_shape: Sequence[int]
) -> tuple[nn.Module, dict[str, str]]:
    """An eval-mode copy of `model` with every foldable batch norm folded, and the folds as
    {batch-norm name: layer name}; the original is untouched."""
    work = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():  # a model that builds its layers from its first input builds them now
        work(torch.zeros(1, *(int(s) for s in input_shape)))
    folds = foldable_pairs(work)
    with torch.no_grad():
        for bn_name, layer_name in folds.items():
            layer, bn = work.get_submodule(layer_name), work.get_submodule(bn_name)
            fuse = fuse_linear_bn_eval if isinstance(layer, nn.Linear) else fuse_conv_bn_eval
            work.set_submodule(layer_name, fuse(layer, bn))
            work.set_submodule(bn_name, nn.Identity())
    return work, folds


def foldable_pairs(model: nn.Module) -> dict[str, str]:
    """{batch-norm name: layer name} for each batch norm that may be folded into its input."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as err:  # fx raises many types (TraceError, TypeError, proxy errors)
        raise CompressionError(
            f"cannot fold batch norm in {type(model).__name__}: torch.fx cannot trace its "
            f"forward ({type(err).__name__}: {err}); fold it yourself or keep batch norm"
        ) from err
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    modules = dict(model.named_modules())
    return {
        node.target: node.args[0].target
        for node in graph.nodes
        if _folds_into_input(node, modules, calls)
    }


def _folds_into_input(node: fx.Node, modules: dict[str, nn.Module], calls: dict) -> bool:
    bn = modules.get(node.target) if node.op == "call_module" else None
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not bn.track_running_stats:
        return False
    if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], fx.Node):
        return False
    source = node.args[0]
    layer = modules.get(source.target) if source.op == "call_module" else None
    if type(layer) not in _FOLDABLE or len(source.users) != 1:
        return False
    width = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    return width == bn.num_features and calls[node.target] == calls[source.target] == 1
