"""`DynamicModel`: a trained model run as a chain whose conv/linear layers use the mechanism
its `DynamicPlan` names, with optional early exits; every run can fill a `Ledger`.

Inputs that leave at an exit are scattered into the output and the rest are gathered, so later
layers run densely on fewer rows (real savings at batch 1 and batched)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from axdnn.cost import count_ops
from axdnn.dynamic.accounting import EffortReport, Ledger
from axdnn.dynamic.chain import Affine, Step, is_relu_step, trace_chain
from axdnn.dynamic.exits import ExitHead, collect_features, train_head
from axdnn.dynamic.plan import DynamicPlan, LayerSetting
from axdnn.dynamic.sdss import Sdss
from axdnn.dynamic.sfma import Sfma
from axdnn.dynamic.spet import Spet, SpetKnobs
from axdnn.errors import DynamicError

_SIGN_KEEPING = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)
_SIGN_KEEPING_FUNCS = {"flatten", "reshape", "view", "max_pool2d", "avg_pool2d"}


class Dense:
    """A chain item run exactly; counts its dense MACs as executed."""

    mechanism = "dense"

    def __init__(self, item: Affine | Step, macs: int) -> None:
        self.item, self.macs, self.name = item, macs, item.name

    def __call__(self, x: torch.Tensor, ledger: Ledger | None, rows: torch.Tensor):
        if ledger is not None and self.macs:
            ledger.add(self.name, rows, self.macs)
        return self.item(x)


class DynamicModel:
    """The chain of `model` run under `plan`; `heads` maps chain step names to exit heads."""

    def __init__(
        self,
        model: nn.Module,
        input_shape: tuple[int, ...],
        plan: DynamicPlan | None = None,
        heads: dict[str, ExitHead] | None = None,
    ) -> None:
        self.model = model.eval()
        self.input_shape = tuple(input_shape)
        self.chain = trace_chain(model)
        self.names = [item.name for item in self.chain]
        self.heads = dict(heads or {})
        self.dense_macs = _dense_macs(model, self.chain, self.input_shape)
        self.nonneg = _nonneg_inputs(self.chain)
        self.plan = DynamicPlan()
        self.set_plan(plan or DynamicPlan())

    # configuration
    def affine_layers(self, relu_only: bool = False) -> list[str]:
        """Names of the conv/linear layers (with a ReLU after them when `relu_only`)."""
        return [i.name for i in self.chain if isinstance(i, Affine) and (i.relu or not relu_only)]

    def conv_layers(self) -> list[str]:
        return [i.name for i in self.chain if isinstance(i, Affine) and i.kind == "conv"]

    def set_plan(self, plan: DynamicPlan) -> None:
        for name in plan.layers:
            if name not in self.affine_layers():
                raise DynamicError(
                    f"dynamic plan names layer {name!r}, which is not a conv/linear layer of the "
                    f"chain; layers: {', '.join(self.affine_layers())}"
                )
        for name in plan.exits:
            if name not in self.heads:
                raise DynamicError(
                    f"dynamic plan sets exit {name!r} but no exit head is attached there; "
                    f"exits: {', '.join(self.heads) or 'none'}"
                )
        self.plan = plan
        self.runners = [self._runner(i, item) for i, item in enumerate(self.chain)]

    def _runner(self, index: int, item: Affine | Step):
        if not isinstance(item, Affine):
            return Dense(item, self.dense_macs[item.name])
        s: LayerSetting = self.plan.setting(item.name)
        if s.mechanism == "spet":
            return Spet(item, SpetKnobs(s.fraction, s.alpha, s.block), self.nonneg[index])
        if s.mechanism in ("sdss", "sfma") and item.kind != "conv":
            raise DynamicError(f"{s.mechanism} runs on conv layers; {item.name!r} is linear")
        if s.mechanism == "sdss":
            return Sdss(item, s.delta)
        if s.mechanism == "sfma":
            return Sfma(item, s.delta)
        return Dense(item, self.dense_macs[item.name])

    def exit_candidates(self, max_exits: int = 3, max_share: float = 0.9) -> list[str]:
        """Default exit points: after pools, blocks and hidden ReLU layers whose cumulative
        share of the dense MACs is at most `max_share`, at most `max_exits`, evenly spread."""
        total = sum(self.dense_macs.values()) or 1
        done, options = 0, []
        for i, item in enumerate(self.chain[:-1]):
            done += self.dense_macs[item.name]
            nxt = self.chain[i + 1]
            pooled_next = isinstance(nxt, Step) and isinstance(nxt.module, _SIGN_KEEPING)
            is_point = (isinstance(item, Affine) and item.relu and not pooled_next) or (
                isinstance(item, Step)
                and (item.module is not None)
                and not pooled_next
                and not isinstance(item.module, nn.ReLU | nn.Flatten | nn.Dropout)
            )
            if is_point and done / total <= max_share:
                options.append(item.name)
        if len(options) <= max_exits:
            return options
        picks = torch.linspace(0, len(options) - 1, max_exits).round().long().tolist()
        return [options[i] for i in dict.fromkeys(picks)]

    def train_exits(
        self,
        points: list[str],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epochs: int = 20,
        seed: int = 0,
        progress: bool = False,
    ) -> dict[str, float]:
        """Train an exit head after each chain step in `points` on the frozen model's features
        of (x, y); returns each head's training accuracy."""
        index = {name: i for i, name in enumerate(self.names)}
        unknown = [p for p in points if p not in index or index[p] == len(self.names) - 1]
        if unknown:
            raise DynamicError(
                f"exit point(s) {unknown} are not chain steps before the last; steps: "
                f"{', '.join(self.names[:-1])}"
            )
        outputs = dict(self.prefix(x[:1]))
        classes = outputs[len(self.names) - 1].shape[1]
        heads = {index[p]: ExitHead(tuple(outputs[index[p]].shape[1:]), classes) for p in points}
        torch.manual_seed(seed)
        for head in heads.values():
            head.fc.reset_parameters()
        features = collect_features(self.prefix, heads, x, progress=progress)
        accuracy = {}
        for p in points:
            i = index[p]
            accuracy[p] = train_head(heads[i], features[i], y, epochs=epochs, seed=seed)
            self.heads[p] = heads[i].eval()
        return accuracy

    # running
    def prefix(self, x: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Run the chain densely, yielding (index, output) after every step (exit training)."""
        with torch.no_grad():
            for i, item in enumerate(self.chain):
                x = item(x)
                yield i, x

    @torch.no_grad()
    def __call__(
        self, x: torch.Tensor, ledger: Ledger | None = None, offset: int = 0
    ) -> torch.Tensor:
        """Logits for `x`; `ledger` (if given) gets rows `offset ... offset + len(x)`."""
        rows = torch.arange(offset, offset + len(x))
        if ledger is not None:
            self._declare(ledger)
        out: torch.Tensor | None = None
        local = torch.arange(len(x))
        for name, runner in zip(self.names, self.runners, strict=True):
            x = runner(x, ledger, rows)
            threshold = self.plan.exits.get(name)
            if threshold is None or name not in self.heads:
                continue
            logits = self.heads[name](x)
            if ledger is not None:
                pool, macs = self.heads[name].ops()
                k = logits.shape[1]
                ledger.add(
                    f"exit@{name}", rows, 0, predictor=pool + macs + 2 * k, comparisons=k + 1
                )
            leave = torch.softmax(logits, 1).amax(1) >= threshold
            if not bool(leave.any()):
                continue
            if out is None and bool(leave.all()):  # everyone leaves (always so at batch 1)
                if ledger is not None:
                    ledger.exited(rows, name)
                return logits
            if out is None:
                out = torch.empty(len(local), logits.shape[1], dtype=logits.dtype)
            out[local[leave]] = logits[leave]
            if ledger is not None:
                ledger.exited(rows[leave], name)
            stay = ~leave
            x, rows, local = x[stay], rows[stay], local[stay]
            if len(local) == 0:
                return out
        if out is None:
            return x
        out[local] = x
        return out

    def _declare(self, ledger: Ledger) -> None:
        for name, runner in zip(self.names, self.runners, strict=True):
            if self.dense_macs[name] or isinstance(runner, Spet | Sdss | Sfma):
                ledger.layer(name, runner.mechanism, self.dense_macs[name])
            if name in self.heads and self.plan.exits.get(name) is not None:
                ledger.layer(f"exit@{name}", "exit", 0)

    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, progress: bool = False
    ) -> tuple[float, EffortReport, torch.Tensor]:
        """Top-1 accuracy, the effort report and the predictions over all of `x`."""
        ledger = Ledger(len(x))
        preds = []
        starts = range(0, len(x), batch_size)
        for start in tqdm(starts, desc="dynamic", disable=not progress, leave=False):
            preds.append(self(x[start : start + batch_size], ledger, start).argmax(1))
        pred = torch.cat(preds)
        return float((pred == y).float().mean()), ledger.report(), pred


def _dense_macs(model: nn.Module, chain, input_shape) -> dict[str, int]:
    """Per chain item, its dense MACs per input from axdnn.cost (the layers under its name)."""
    report = count_ops(model, input_shape)
    out = {item.name: 0 for item in chain}
    placed = 0
    for layer in report.layers:
        for item in chain:
            owners = (item.name, *getattr(item, "members", ()))
            if any(layer.name == o or layer.name.startswith(o + ".") for o in owners):
                out[item.name] += layer.macs
                placed += layer.macs
                break
    total = sum(layer.macs for layer in report.layers)
    if placed != total:
        missing = [layer.name for layer in report.layers if not _owned(layer.name, chain)]
        raise DynamicError(
            f"{type(model).__name__}: MACs of {missing} are outside every chain step; dynamic "
            "accounting would not add up to axdnn.cost's count"
        )
    return out


def _owned(name: str, chain) -> bool:
    return any(name == i.name or name.startswith(i.name + ".") for i in chain)


def _nonneg_inputs(chain) -> list[bool]:
    """For each chain item, whether its input is provably >= 0 (after a ReLU, through pools)."""
    flags, current = [], False
    for item in chain:
        flags.append(current)
        if isinstance(item, Affine):
            current = item.relu
        elif is_relu_step(item):
            current = True
        elif not _keeps_sign(item):
            current = False
    return flags


def _keeps_sign(item: Step) -> bool:
    if item.module is not None:
        return isinstance(item.module, _SIGN_KEEPING)
    name = item.target if isinstance(item.target, str) else getattr(item.target, "__name__", "")
    return name in _SIGN_KEEPING_FUNCS
