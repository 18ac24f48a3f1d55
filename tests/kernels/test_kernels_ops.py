"""The kernels as torch operators: torch.compile and torch.export trace them as
`torch.ops.axdnn.*` nodes (fake implementations give the shapes) and the traced programs give
the eager outputs bit for bit."""

from __future__ import annotations

import pytest
import torch
from kernels_tables import mitchell, random_table
from torch._subclasses.fake_tensor import FakeTensorMode

from axdnn.kernels import (
    ActQuant,
    ConvGeometry,
    ZeroPoints,
    lut_conv2d,
    lut_conv2d_float,
    lut_linear,
    lut_linear_float,
    lut_matmul,
    native,
)

BACKENDS = ["auto", "reference"] + (["native"] if native.available() else [])


class KernelNet(torch.nn.Module):
    """Every public kernel entry point in one forward: fused conv and linear layers, the raw
    zero-point MAC and a batched table matmul."""

    def __init__(self, backend: str, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.backend = backend
        self.geom = ConvGeometry.of(3, stride=2, padding=1, groups=2)
        self.register_buffer("table", mitchell())
        self.register_buffer(
            "w", torch.randint(0, 256, (6, 2, 3, 3), generator=gen).to(torch.uint8)
        )
        self.register_buffer("zw", torch.randint(0, 4, (6,), generator=gen))
        self.register_buffer("scale", torch.rand(6, generator=gen) * 1e-3)
        self.register_buffer("xs", torch.tensor(0.05))
        self.register_buffer("fc", torch.randint(0, 256, (5, 6 * 4 * 4), generator=gen))
        self.register_buffer("fc_zw", torch.randint(0, 4, (5,), generator=gen))
        self.register_buffer("fc_scale", torch.rand(5, generator=gen))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        act = ActQuant(self.xs, 7, 0, 255, 8)
        y = lut_conv2d_float(x, act, self.w, self.table, self.geom, ZeroPoints(7, self.zw),
                             self.scale, 20, self.backend)  # fmt: skip
        y = torch.relu(y)
        flat = y.flatten(1)
        z = lut_linear_float(flat, ActQuant(torch.tensor(0.01), 0, 0, 255, 8), self.fc,
                             self.table, ZeroPoints(0, self.fc_zw), self.fc_scale, None,
                             self.backend)  # fmt: skip
        idx = (flat * 100).clamp(0, 255).to(torch.uint8)
        raw = lut_linear(idx, self.fc.to(torch.uint8), self.table, self.backend,
                         ZeroPoints(3, self.fc_zw))  # fmt: skip
        codes = (x * 50).clamp(0, 255).to(torch.uint8)
        conv = lut_conv2d(codes, self.w, self.table, self.geom, backend=self.backend)
        mm = lut_matmul(codes[:, :, :3], codes[:, :, :, :2], self.table, self.backend)
        return z, raw, conv, mm


def _input(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2


def _equal(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_traces_the_kernels_as_one_graph_and_matches_eager(backend):
    model = KernelNet(backend)
    x = _input()
    eager = model(x)
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return torch._dynamo.backends.debugging.aot_eager(gm, example_inputs)

    compiled = torch.compile(model, backend=recording, fullgraph=True)
    assert _equal(compiled(x), eager)
    assert _equal(compiled(_input(2)), model(_input(2)))  # a second input, same graph
    code = graphs[0].code
    for op in ("lut_conv2d_float", "lut_linear_float", "lut_linear", "lut_conv2d", "lut_matmul"):
        assert f"torch.ops.axdnn.{op}" in code, op


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_gives_a_program_with_axdnn_operators_and_eager_outputs(backend):
    model = KernelNet(backend)
    program = torch.export.export(model, (_input(),))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert {"axdnn.lut_conv2d_float.default", "axdnn.lut_matmul.default"} <= targets
    for seed in (1, 3):
        assert _equal(program.module()(_input(seed)), model(_input(seed)))


@pytest.mark.parametrize("seed", [0, 1])
def test_fake_implementations_give_the_real_shapes_and_dtypes(seed):
    """Strided, padded, dilated, grouped conv and broadcast matmul: fake == real metadata."""
    model = KernelNet("auto", seed)
    x = _input(seed)
    real = model(x)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = model(mode.from_tensor(x))
    for r, f in zip(real, fake, strict=True):
        assert tuple(r.shape) == tuple(f.shape) and r.dtype == f.dtype


def test_operators_pass_torch_library_opcheck():
    """Schema, fake tensor and dispatch checks of torch.library on sample calls."""
    table = random_table(4, 4, 2)
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 16, (2, 4, 5, 5), generator=gen)
    w = torch.randint(0, 16, (6, 2, 3, 3), generator=gen)
    geom = [3, 3, 1, 2, 1, 0, 1, 1, 2]
    zw = torch.randint(0, 3, (6,), generator=gen)
    cases = [
        (torch.ops.axdnn.lut_conv2d.default,
         (x, w, table, geom, None, "auto", True, 2, zw, False, False, None)),
        (torch.ops.axdnn.lut_conv2d_float.default,
         (torch.randn(2, 4, 5, 5, generator=gen), torch.tensor(0.2), torch.tensor(3), 0, 15, 4, w,
          table, geom, torch.tensor(3), zw, False, False, None, torch.rand(6, generator=gen), 12,
          "auto")),
        (torch.ops.axdnn.lut_linear.default,
         (x.flatten(1)[:, :7], w.flatten(1)[:, :7], table, "auto", False, 0, None, False, False,
          None)),
        (torch.ops.axdnn.lut_matmul.default, (x[:, :2, :3], x[:1, 0, :, :4], table, "auto")),
    ]  # fmt: skip
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_compiled_approximate_model_matches_eager_with_the_kernels_in_its_graphs():
    """An `approximate()` model (its layers' Python control flow breaks the graph around each
    kernel call) compiles, runs the kernels as traced operators, and matches eager."""
    from axdnn.nn.approximate import approximate
    from axdnn.nn.plan import Plan

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    )  # fmt: skip
    calib = torch.rand(16, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    approx = approximate(model, Plan.uniform("mitchell"), calib).eval()
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm.code)
        return gm

    with torch.no_grad():
        eager = approx(x)
        compiled = torch.compile(approx, backend=recording)(x)
    assert torch.equal(compiled, eager)
    code = "\n".join(graphs)
    assert "torch.ops.axdnn.lut_conv2d_float" in code and "torch.ops.axdnn.lut_linear_float" in code


def test_export_of_an_approximate_model_matches_eager():
    from axdnn.nn.approximate import approximate
    from axdnn.nn.plan import Plan

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 5),
    )  # fmt: skip
    calib = torch.rand(16, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    approx = approximate(model, Plan.uniform("mitchell"), calib).eval()
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # inference: the layers' fused float chain
        program = torch.export.export(approx, (x,))
        targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert {"axdnn.lut_conv2d_float.default", "axdnn.lut_linear_float.default"} <= targets
        assert torch.equal(program.module()(x), approx(x))
