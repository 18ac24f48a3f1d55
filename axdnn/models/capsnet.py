"""CapsNet (Sabour, Frosst & Hinton, "Dynamic routing between capsules", NIPS 2017), sized by its
input: a conv layer, primary capsules, digit capsules with dynamic routing, squash, the margin
loss and an optional reconstruction decoder.

Every capsule operation is a plain functional torch call inside its own small submodule, so each
is a distinct functional-operation site (`axdnn.inject.functional`, `axdnn.cost.count_ops`,
plans): `digit.votes.matmul#0` (u_hat = W u), `digit.softmax.softmax#k` (coupling coefficients),
`digit.weighted.matmul#k` (s = sum c u_hat), `digit.squash.mul#k` (v = squash(s)),
`digit.agreement.matmul#k` (u_hat . v, the logits update) and `lengths.linalg_vector_norm#0`
(class lengths); `#k` counts routing iterations. `OPERATIONS` maps friendly names to them.

Configurations (chosen from the input's height at the first forward, or `image_size`):

- small (inputs under 16 pixels, e.g. the 8x8 `digits`): conv 3x3 with 32 channels, primary
  capsules 3x3 stride 1 of 8 types x 4 dims (4x4 grid: 128 capsules), 10 digit capsules of 8
  dims, decoder 80-128-256-64.
- 28x28 (Fashion-MNIST and larger): conv 9x9 with 32 channels (the paper: 256), primary
  capsules 9x9 stride 2 of 8 types x 8 dims (the paper: 32 types; 6x6 grid: 288 capsules),
  10 digit capsules of 16 dims, decoder 160-512-1024-784. Fewer channels and types keep
  training feasible on two CPU cores.

The model is built lazily when the factory gets no `image_size` (like torch's lazy modules): the
first forward, or loading a state dict (which stores `image_size`), creates the layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import ModelError
from axdnn.models.registry import register_model

M_PLUS, M_MINUS, LAMBDA = 0.9, 0.1, 0.5
RECONSTRUCTION_WEIGHT = 0.0005
SMALL_LIMIT = 16  # inputs below this height get the small configuration
EPS = 1e-8

OPERATIONS: dict[str, tuple[str, ...]] = {
    "conv1": ("conv1",),
    "primary": ("primary.conv",),
    "votes": ("digit.votes.matmul#*",),
    "routing_softmax": ("digit.softmax.softmax#*",),
    "weighted_sum": ("digit.weighted.matmul#*",),
    "squash": ("digit.squash.mul#*",),
    "agreement": ("digit.agreement.matmul#*",),
    "lengths": ("lengths.linalg_vector_norm#*",),
}
"""Friendly operation name -> site-name patterns (module names, or functional sites with `#*`
for every routing iteration), in forward order; the ReD-CaNe analysis sweeps these."""
CONVOLUTIONS = ("conv1", "primary")
ROUTING = ("routing_softmax", "weighted_sum", "squash", "agreement")


@dataclass(frozen=True)
class CapsConfig:
    """Layer sizes of one CapsNet configuration."""

    conv_channels: int
    conv_kernel: int
    primary_types: int
    primary_dims: int
    primary_kernel: int
    primary_stride: int
    digit_dims: int
    decoder_hidden: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SMALL = CapsConfig(32, 3, 8, 4, 3, 1, 8, (128, 256))
MNIST = CapsConfig(32, 9, 8, 8, 9, 2, 16, (512, 1024))


def config_for(image_size: int) -> CapsConfig:
    """The configuration for square-ish inputs of height `image_size`."""
    return SMALL if image_size < SMALL_LIMIT else MNIST


class Squash(nn.Module):
    """v = |s|^2 / (1 + |s|^2) * s / |s| over the last dim; the output is its only `mul`."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        n2 = torch.sum(torch.square(s), dim=-1, keepdim=True)
        scale = torch.div(n2, torch.add(n2, 1.0)) / torch.sqrt(n2 + EPS)
        return torch.mul(s, scale)


class PrimaryCaps(nn.Module):
    """Convolution whose output channels group into capsules, squashed: (B, N, dims)."""

    def __init__(self, in_channels: int, cfg: CapsConfig) -> None:
        super().__init__()
        self.types, self.dims = cfg.primary_types, cfg.primary_dims
        self.conv = nn.Conv2d(
            in_channels, self.types * self.dims, cfg.primary_kernel, stride=cfg.primary_stride
        )
        self.squash = Squash()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.conv(x)
        b, _, h, w = u.shape
        u = u.reshape(b, self.types, self.dims, h, w).permute(0, 1, 3, 4, 2)
        return self.squash(u.reshape(b, self.types * h * w, self.dims))


class Votes(nn.Module):
    """u_hat[b, j, i] = W[i, j] u[b, i]: every primary capsule's prediction for every class,
    as one batched product per input capsule, (N, B, Di) @ (N, Di, C*Do)."""

    def __init__(self, n_in: int, dim_in: int, classes: int, dim_out: int) -> None:
        super().__init__()
        self.classes, self.dim_out = classes, dim_out
        self.weight = nn.Parameter(0.01 * torch.randn(n_in, dim_in, classes * dim_out))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u_hat = torch.matmul(u.transpose(0, 1), self.weight)  # (N, B, C*Do)
        n, b = u_hat.shape[:2]
        return u_hat.reshape(n, b, self.classes, self.dim_out).permute(1, 2, 0, 3)


class RoutingSoftmax(nn.Module):
    """Coupling coefficients c = softmax over classes of the routing logits b (B, C, N)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=1)


class WeightedSum(nn.Module):
    """s_j = sum_i c_ij u_hat_j|i, as (B, C, 1, N) @ (B, C, N, D) -> (B, C, D)."""

    def forward(self, c: torch.Tensor, u_hat: torch.Tensor) -> torch.Tensor:
        return torch.matmul(c.unsqueeze(2), u_hat).squeeze(2)


class Agreement(nn.Module):
    """Logits update b_ij += u_hat_j|i . v_j, as (B, C, N, D) @ (B, C, D, 1)."""

    def forward(self, logits: torch.Tensor, u_hat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return logits + torch.matmul(u_hat, v.unsqueeze(-1)).squeeze(-1)


class DigitCaps(nn.Module):
    """Class capsules from primary capsules by dynamic routing (Sabour et al., procedure 1)."""

    def __init__(
        self, n_in: int, dim_in: int, classes: int, dim_out: int, *, iterations: int = 3
    ) -> None:
        super().__init__()
        self.iterations = iterations
        self.votes = Votes(n_in, dim_in, classes, dim_out)
        self.softmax = RoutingSoftmax()
        self.weighted = WeightedSum()
        self.squash = Squash()
        self.agreement = Agreement()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u_hat = self.votes(u)
        logits = torch.zeros(u_hat.shape[:3], dtype=u_hat.dtype, device=u_hat.device)
        v = u_hat.new_zeros(())
        for r in range(self.iterations):
            c = self.softmax(logits)
            v = self.squash(self.weighted(c, u_hat))
            if r < self.iterations - 1:
                logits = self.agreement(logits, u_hat, v)
        return v


class Lengths(nn.Module):
    """Class scores: the length of each class capsule (B, C)."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(v, dim=-1)


def margin_loss(lengths: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sabour et al. eq. 4: sum over classes, mean over the batch."""
    t = F.one_hot(target, lengths.shape[1]).to(lengths.dtype)
    present = t * F.relu(M_PLUS - lengths).square()
    absent = LAMBDA * (1 - t) * F.relu(lengths - M_MINUS).square()
    return (present + absent).sum(dim=1).mean()


class CapsNet(nn.Module):
    """CapsNet whose forward returns class lengths (argmax = prediction); see the module
    docstring. `training_loss` is the margin loss plus the reconstruction loss."""

    operations = OPERATIONS  # what axdnn.analysis.redcane sweeps by default
    routing_operations = ROUTING
    convolution_operations = CONVOLUTIONS

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int | None = None,
        routing_iterations: int = 3,
        *,
        decoder: bool = True,
    ) -> None:
        super().__init__()
        if routing_iterations < 1:
            raise ModelError(f"capsnet: routing_iterations={routing_iterations}; expected >= 1")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.routing_iterations, self.use_decoder = routing_iterations, decoder
        self.register_buffer("image_size", torch.zeros(2, dtype=torch.int64))
        self.config: CapsConfig | None = None
        self._stash: torch.Tensor | None = None
        self._register_load_state_dict_pre_hook(self._build_for_state)
        if image_size is not None:
            self.build((image_size, image_size))

    @property
    def built(self) -> bool:
        return self.config is not None

    def build(self, size: tuple[int, int]) -> None:
        """Create the layers for inputs of height x width `size` (once)."""
        if self.built:
            return
        h, w = int(size[0]), int(size[1])
        cfg = config_for(min(h, w))
        g_h = _grid(_grid(h, cfg.conv_kernel, 1), cfg.primary_kernel, cfg.primary_stride)
        g_w = _grid(_grid(w, cfg.conv_kernel, 1), cfg.primary_kernel, cfg.primary_stride)
        if g_h < 1 or g_w < 1:
            raise ModelError(
                f"capsnet: input {h}x{w} is too small for its configuration (conv "
                f"{cfg.conv_kernel}x{cfg.conv_kernel}, primary {cfg.primary_kernel}x"
                f"{cfg.primary_kernel}); give at least 5x5 pixels"
            )
        device = self.image_size.device
        self.conv1 = nn.Conv2d(self.in_channels, cfg.conv_channels, cfg.conv_kernel)
        self.primary = PrimaryCaps(cfg.conv_channels, cfg)
        n_in = cfg.primary_types * g_h * g_w
        self.digit = DigitCaps(
            n_in,
            cfg.primary_dims,
            self.num_classes,
            cfg.digit_dims,
            iterations=self.routing_iterations,
        )
        self.lengths = Lengths()
        if self.use_decoder:
            a, b = cfg.decoder_hidden
            self.decoder = nn.Sequential(
                nn.Linear(self.num_classes * cfg.digit_dims, a),
                nn.ReLU(),
                nn.Linear(a, b),
                nn.ReLU(),
                nn.Linear(b, self.in_channels * h * w),
            )
        self.to(device)
        self.image_size.copy_(torch.tensor([h, w]))
        self.config = cfg

    def _build_for_state(self, state_dict, prefix, *_args) -> None:
        size = state_dict.get(prefix + "image_size")
        if size is not None and not self.built and int(size.min()) > 0:
            self.build((int(size[0]), int(size[1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.built:
            self.build((x.shape[-2], x.shape[-1]))
        h = F.relu(self.conv1(x))
        v = self.digit(self.primary(h))
        if self.training and self.use_decoder:
            self._stash = v
        return self.lengths(v)

    def reconstruct(self, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Decoder output from the class capsules, masked to the `target` class."""
        mask = F.one_hot(target, self.num_classes).to(v.dtype).unsqueeze(-1)
        return self.decoder((v * mask).flatten(1))

    def training_loss(
        self, outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        """Margin loss, plus 0.0005 x the summed squared reconstruction error (mean over the
        batch) from the capsules the last training forward produced."""
        loss = margin_loss(outputs, target)
        v, self._stash = self._stash, None
        if v is not None and self.use_decoder:
            recon = self.reconstruct(v, target)
            error = (recon - inputs.flatten(1)).square().sum(dim=1).mean()
            loss = loss + RECONSTRUCTION_WEIGHT * error
        return loss

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_stash"] = None  # a graph tensor from training; never copied or pickled
        return state


def _grid(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


@register_model("capsnet", lr=5e-3)
def capsnet(
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | None = None,
    routing_iterations: int = 3,
    decoder: bool = True,
) -> CapsNet:
    """CapsNet sized by its input (built at the first forward unless `image_size` is given)."""
    return CapsNet(in_channels, num_classes, image_size, routing_iterations, decoder=decoder)
