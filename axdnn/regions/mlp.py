"""Multilayer-perceptron candidates for a region: topology, training on sampled input/output
pairs, held-out error, cost (MACs and energy from the cost model), measured latency, and the
checkpoint of a chosen network.

Inputs and outputs are standardised with the training set's mean and deviation; those affine maps
fold into the first and last layer's weights, so they are not priced as extra operations (with
number formats the fold is not exact; the formats apply to the standardised values). Activation
functions are not priced either: the cost model counts MACs and memory traffic.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from axdnn.errors import RegionError
from axdnn.formats import parse_format
from axdnn.nn import LayerSpec, Plan, approximate
from axdnn.regions.region import Region, get_region, topology_text

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
CHECKPOINT_KIND = "axdnn-region-network"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Topology:
    """One MLP: hidden widths, hidden activation, and optional weight/activation formats
    (axdnn.formats spec strings; None or 'fp32' is plain float32)."""

    hidden: tuple[int, ...]
    activation: str = "sigmoid"
    weight_format: str | None = None
    act_format: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))
        if any(w < 1 for w in self.hidden):
            raise RegionError(f"hidden widths {list(self.hidden)} must all be >= 1")
        if self.activation not in ACTIVATIONS:
            raise RegionError(
                f"activation {self.activation!r} unknown; choose one of {', '.join(ACTIVATIONS)}"
            )
        for key in ("weight_format", "act_format"):
            spec = getattr(self, key)
            if spec is not None:
                fmt = parse_format(spec, key)
                object.__setattr__(self, key, None if fmt.spec == "fp32" else fmt.spec)

    def text(self, region: Region) -> str:
        """`9->8->1 sigmoid [w=fxp:s4.8]`."""
        formats = [f"{k}={v}" for k, v in (("w", self.weight_format), ("a", self.act_format)) if v]
        tail = f" [{', '.join(formats)}]" if formats else ""
        return f"{topology_text(region, self.hidden)} {self.activation}{tail}"

    def key(self) -> str:
        """A stable string naming this topology (seeds its training)."""
        return f"{list(self.hidden)}|{self.activation}|{self.weight_format}|{self.act_format}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        try:
            return cls(
                hidden=tuple(data["hidden"]),
                activation=data.get("activation", "sigmoid"),
                weight_format=data.get("weight_format"),
                act_format=data.get("act_format"),
            )
        except (KeyError, TypeError) as err:
            raise RegionError(f"topology record {data!r} is malformed ({err})") from None


def build_mlp(region: Region, topology: Topology) -> nn.Sequential:
    """The float or format MLP in_dim -> hidden... -> out_dim (linear output layer)."""
    widths = (region.in_dim, *topology.hidden, region.out_dim)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[topology.activation]())
    model = nn.Sequential(*layers)
    if topology.weight_format is None and topology.act_format is None:
        return model
    spec = LayerSpec(weight_format=topology.weight_format, act_format=topology.act_format)
    return approximate(model, Plan(layers={"*": spec}), None)


@dataclass(frozen=True)
class TrainSettings:
    """How every candidate (and the baseline) is trained: Adam with a cosine schedule on the
    mean squared error of standardised outputs."""

    epochs: int = 40
    batch_size: int = 128
    lr: float = 3e-2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise RegionError(
                f"training settings {asdict(self)}: epochs and batch_size must be >= 1, lr > 0"
            )


@dataclass
class Pairs:
    """Sampled inputs and the region's exact outputs, one split."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def sample(cls, region: Region, n: int, seed: int, stream: int) -> Pairs:
        x = region.sample(n, np.random.default_rng([seed, stream]))
        return cls(x, region(x))


@dataclass
class Scaler:
    """Per-column standardisation of inputs and outputs (from the training pairs)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    @classmethod
    def fit(cls, pairs: Pairs) -> Scaler:
        def std(a):
            s = a.std(axis=0)
            return np.where(s > 1e-12, s, 1.0)

        return cls(pairs.x.mean(axis=0), std(pairs.x), pairs.y.mean(axis=0), std(pairs.y))

    def inputs(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32)

    def targets(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((y - self.y_mean) / self.y_std, dtype=torch.float32)

    def outputs(self, z: torch.Tensor) -> np.ndarray:
        return z.detach().double().numpy() * self.y_std + self.y_mean

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        try:
            return cls(**{f.name: np.asarray(data[f.name], dtype=np.float64) for f in fields(cls)})
        except (KeyError, TypeError) as err:
            raise RegionError(f"network scaler record is malformed (missing {err})") from None


def topology_seed(seed: int, topology: Topology) -> int:
    """The training seed of one topology: a function of the run seed and the topology alone,
    so a chosen network can be trained again bit for bit."""
    return (seed * 1_000_003 + zlib.crc32(topology.key().encode())) % (2**31)


@dataclass
class Network:
    """A trained candidate: its region, topology, weights and scaler."""

    region: Region
    topology: Topology
    model: nn.Sequential
    scaler: Scaler
    seed: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs for raw region inputs (N, in_dim)."""
        self.model.eval()
        with torch.no_grad():
            return self.scaler.outputs(self.model(self.scaler.inputs(x)))

    def error(self, pairs: Pairs) -> float:
        """The region's quality metric of this network on held-out pairs."""
        return self.region.error(pairs.x, self.predict(pairs.x), pairs.y)


def train_network(
    region: Region, topology: Topology, train: Pairs, settings: TrainSettings, *, seed: int = 0
) -> Network:
    """Train one MLP on the pairs; deterministic for a given (seed, topology)."""
    seed = topology_seed(seed, topology)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_mlp(region, topology)
    scaler = Scaler.fit(train)
    x, y = scaler.inputs(train.x), scaler.targets(train.y)
    model.train()
    with _threads(1):  # tiny layers: threads only contend
        _fit(model, x, y, settings, generator)
    model.eval()
    return Network(region, topology, model, scaler, seed)


def _fit(model, x, y, settings: TrainSettings, generator: torch.Generator) -> None:
    steps = settings.epochs * max(1, -(-len(x) // settings.batch_size))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            loss = torch.mean((model(x[idx]) - y[idx]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()


# ---- cost -------------------------------------------------------------------------------------


def network_cost(network: Network, memory: str = "sram") -> dict[str, float]:
    """MACs, parameters and energy (pJ per inference, Horowitz 45 nm) from the cost model,
    each layer priced by its formats."""
    from axdnn.cost import count_ops, estimate_energy, precision_from_model

    ops = count_ops(network.model, (network.region.in_dim,))
    energy = estimate_energy(ops, precision_from_model(network.model), memory=memory)
    return {
        "macs": int(ops.total_macs),
        "params": int(sum(p.numel() for p in network.model.parameters())),
        "energy_pj": float(energy.total_pj),
        "compute_pj": float(energy.total_compute_pj),
        "memory_pj": float(energy.total_memory_pj),
    }


def deployed(network: Network) -> nn.Sequential:
    """The float32 network as it would be deployed: (quantised) weights, standardisation folded
    into the first and last layers, no fake-quantisation of activations; raw inputs in, raw
    outputs out. Used to measure latency."""
    layers = []
    linears = [m for m in network.model if isinstance(m, nn.Linear)]
    s = network.scaler
    for module in network.model:
        if not isinstance(module, nn.Linear):
            layers.append(type(module)())
            continue
        quantize = getattr(module, "quantized_weight", None)
        weight = (quantize()[0] if quantize else module.weight).detach().double()
        bias = module.bias.detach().double()
        if module is linears[0]:
            bias = bias - weight @ torch.as_tensor(s.x_mean / s.x_std)
            weight = weight / torch.as_tensor(s.x_std)
        if module is linears[-1]:
            weight = weight * torch.as_tensor(s.y_std)[:, None]
            bias = bias * torch.as_tensor(s.y_std) + torch.as_tensor(s.y_mean)
        plain = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            plain.weight.copy_(weight.float())
            plain.bias.copy_(bias.float())
        layers.append(plain)
    return nn.Sequential(*layers).eval()


class _threads:
    """Run a block on `n` torch threads and restore the previous count."""

    def __init__(self, n: int) -> None:
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.old)


def _best_time(fn, repeats: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_speedup(
    network: Network, inputs: np.ndarray, repeats: int = 5, threads: int = 1
) -> dict[str, float]:
    """Wall-clock time of the numpy region and of the deployed float32 network on the same
    batch (best of `repeats`, `threads` torch threads), and their ratio (region / network)."""
    region = network.region
    x64 = region.check_inputs(inputs)
    net = deployed(network)
    x32 = torch.as_tensor(x64, dtype=torch.float32)

    def run_net():
        with torch.no_grad():
            net(x32).numpy().astype(np.float64)

    with _threads(threads):
        t_region = _best_time(lambda: region.function(x64), repeats)
        t_net = _best_time(run_net, repeats)
    return {
        "batch": len(x64),
        "region_s": t_region,
        "network_s": t_net,
        "network_us_per_sample": 1e6 * t_net / len(x64),
        "speedup": t_region / t_net if t_net > 0 else float("inf"),
    }


# ---- checkpoints ------------------------------------------------------------------------------


def save_network(network: Network, path: Path) -> Path:
    """Write the network (topology, weights, scaler, region name, info) with torch.save."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            "region": network.region.name,
            "region_dims": [network.region.in_dim, network.region.out_dim],
            "topology": network.topology.to_dict(),
            "state_dict": network.model.state_dict(),
            "scaler": network.scaler.to_dict(),
            "seed": network.seed,
            "info": network.info,
        },
        path,
    )
    return path


def load_network(path: Path, region: Region | str | None = None) -> Network:
    """Read a network written by `save_network` (weights only, no code runs); the region is the
    stored built-in name unless given (a user region must be given)."""
    path = Path(path)
    if not path.is_file():
        raise RegionError(f"network checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        detail = " ".join(str(err).split())[:300]
        raise RegionError(f"network checkpoint {str(path)!r} cannot be read ({detail})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_KIND:
        raise RegionError(
            f"{str(path)!r} is not a region network checkpoint (no format {CHECKPOINT_KIND!r})"
        )
    chosen = _checkpoint_region(data, region, path)
    topology = Topology.from_dict(data["topology"])
    model = build_mlp(chosen, topology)
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:300]
        raise RegionError(
            f"network checkpoint {str(path)!r}: weights do not fit ({detail})"
        ) from None
    scaler = Scaler.from_dict(data["scaler"])
    return Network(chosen, topology, model.eval(), scaler, int(data.get("seed", 0)), data["info"])


def _checkpoint_region(data: dict, region: Region | str | None, path: Path) -> Region:
    if region is None:
        name = str(data.get("region"))
        if ":" in name:
            raise RegionError(
                f"network checkpoint {str(path)!r} approximates user region {name!r}; name it "
                "yourself (--region) so that loading the checkpoint never imports code"
            )
        region = name
    chosen = get_region(region)
    dims = list(data.get("region_dims") or [])
    if dims != [chosen.in_dim, chosen.out_dim]:
        raise RegionError(
            f"network checkpoint {str(path)!r} maps {dims[0] if dims else '?'} -> "
            f"{dims[1] if len(dims) > 1 else '?'} values; region {chosen.name!r} maps "
            f"{chosen.in_dim} -> {chosen.out_dim}"
        )
    return chosen
