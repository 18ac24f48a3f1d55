"""One test per recipe of CONTRIBUTING.md ("Recipes: one per extension point"): each one does what
its recipe says from outside the package, registering at run time and unregistering afterwards
(so no other test sees the extension), then shows the extension working end to end through the
public path the recipe names."""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from axdnn.arith import MODELS, Multiplier, Operands, build_model, catalogue, get_multiplier
from axdnn.arith import spec as arith_spec
from axdnn.arith.models import Model
from axdnn.arith.spec import list_multipliers, register_multiplier
from axdnn.cost import count_ops
from axdnn.errors import ConfigError, FormatError, InjectionError, MultiplierError
from axdnn.formats import Format, format_forms, parse_format, register_format, straight_through
from axdnn.formats import base as formats_base
from axdnn.inject import ErrorModel
from axdnn.kernels import (
    Backend,
    ConvGeometry,
    list_backends,
    lut_conv2d,
    lut_linear,
    lut_matmul,
    reference,
    register_backend,
)
from axdnn.kernels import dispatch as kernels_dispatch
from axdnn.nn import (
    DEFAULT_LAYER_MAP,
    ApproxLinear,
    FormatLinear,
    FormatSpec,
    LayerSpec,
    MultiplierSpec,
    Plan,
    approximate,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def undo():
    """Callbacks that unregister what a test registered, run even when the test fails."""
    with contextlib.ExitStack() as stack:
        yield stack


def _tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def _tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, stride=2, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    )


def test_the_recipes_section_lists_the_extension_points_tested_here():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = text.split("## Recipes: one per extension point", 1)[1].split("\n## ", 1)[0]
    for heading in (
        "A multiplier model",
        "A multiplier importer or spec name",
        "A kernel backend",
        "A number format",
        "An error model",
        "An injection site kind",
        "A zoo model",
        "A layer type",
        "An experiment step and its report section",
    ):
        assert f"**{heading}" in section, heading


# ---- a multiplier model ---------------------------------------------------------------------


def _lowzero_core(a, b, a_bits, b_bits, k):
    """Exact product with its k least-significant bits cleared (unsigned core)."""
    return ((a * b) >> k) << k


def _lowzero_scalar(x: int, y: int, k: int) -> int:
    """Scalar reference, signed by sign-magnitude like every built-in model."""
    mag = ((abs(x) * abs(y)) >> k) << k
    return -mag if (x < 0) != (y < 0) else mag


def test_recipe_multiplier_model(undo):
    name = "recipe_lowzero"
    assert name not in MODELS and name not in list_multipliers()
    model = Model(
        name,
        _lowzero_core,
        ("k",),
        lambda na, nb: ((0, na + nb - 1),),
        lambda n: [(n // 2,)],
        "test recipe: exact product, K low bits cleared",
    )
    # the recipe edits MODELS in axdnn/arith/models.py, whose names axdnn.arith.spec registers
    # when it is imported; added at run time, the model's spec name is registered by hand
    undo.callback(arith_spec._CACHE.clear)
    undo.callback(arith_spec._REGISTRY.pop, name, None)
    undo.callback(MODELS.pop, name, None)
    arith_spec._CACHE.clear()
    MODELS[name] = model

    def factory(arg, operands):
        params = [int(p) for p in arg.split(",")] if arg else []
        return build_model(name, params, operands or Operands())

    register_multiplier(name, factory)

    for tag, signed in (("u4", False), ("s4", True)):
        m = get_multiplier(f"{name}:2@{tag}")
        assert isinstance(m, Multiplier) and m.name == f"{name}:2@{tag}"
        assert (m.a_bits, m.b_bits, m.a_signed, m.b_signed) == (4, 4, signed, signed)
        assert m.provenance["params"] == {"k": 2}
        for ia in range(16):
            for ib in range(16):
                x = ia - 16 if signed and ia >= 8 else ia
                y = ib - 16 if signed and ib >= 8 else ib
                assert int(m.table[ia, ib]) == _lowzero_scalar(x, y, 2), (tag, x, y)
        assert get_multiplier(f"{name}:2@{tag}") is m  # cached by spec
    assert torch.equal(get_multiplier(f"{name}:0@u4").table, get_multiplier("exact@u4").table)
    with pytest.raises(MultiplierError, match="out of range"):
        get_multiplier(f"{name}:9@u4")
    # its metrics appear in the catalogue (`axdnn multipliers list`)
    rows = [r for r in catalogue(4) if r["model"] == name]
    assert [r["spec"] for r in rows] == [f"{name}:2@u4"]
    assert rows[0]["metrics"]["wce"] == 3 and rows[0]["metrics"]["er_percent"] > 0

    undo.close()
    assert name not in MODELS and name not in list_multipliers()
    with pytest.raises(MultiplierError, match="unknown multiplier"):
        get_multiplier(f"{name}:2@u4")


# ---- a multiplier importer or spec name -----------------------------------------------------


def _write_csv_table(path: Path, table: np.ndarray, bits: int) -> None:
    path.write_text(f"# bits={bits}\n" + "\n".join(",".join(map(str, row)) for row in table))


def _csv_factory(arg, operands):
    """A new file type: a CSV product table of unsigned operands, widths in its first line."""
    if not arg:
        raise MultiplierError("csv multiplier needs a file, e.g. recipe_csv:table.csv")
    path = Path(arg)
    bits = int(re.fullmatch(r"# bits=(\d+)", path.read_text().splitlines()[0]).group(1))
    values = np.loadtxt(path, delimiter=",", dtype=np.int64, comments="#")
    return Multiplier.from_array(values, bits, bits, name=f"recipe_csv:{path.name}")


def test_recipe_multiplier_importer(tmp_path, undo):
    name = "recipe_csv"
    undo.callback(arith_spec._CACHE.clear)
    undo.callback(arith_spec._REGISTRY.pop, name, None)
    register_multiplier(name, _csv_factory, source_path=lambda arg: Path(arg) if arg else None)
    assert name in list_multipliers()
    with pytest.raises(MultiplierError, match="already registered"):
        register_multiplier(name, _csv_factory)

    exact = get_multiplier("exact@u4")
    path = tmp_path / "m.csv"
    _write_csv_table(path, exact.table.numpy(), 4)
    spec = f"{name}:{path}"
    m = get_multiplier(spec)
    assert m == exact and get_multiplier(spec) is m  # same content, cached while unchanged
    with pytest.raises(MultiplierError, match="asks for u8"):
        get_multiplier(f"{spec}@u8")

    # a spec naming the new file type runs a model under a plan like the built-in table
    model, x = _tiny_mlp(), torch.randn(16, 6)
    ours = approximate(model, Plan.uniform(spec), x)
    builtin = approximate(model, Plan.uniform("exact@u4"), x)
    assert isinstance(ours[0], ApproxLinear) and ours[0].multiplier == exact
    with torch.no_grad():
        assert torch.equal(ours(x), builtin(x))

    # source_path: a changed file is read again
    changed = exact.table.numpy().copy()
    changed[3, 5] += 1
    _write_csv_table(path, changed, 4)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = get_multiplier(spec)
    assert again is not m and int(again.table[3, 5]) == 16

    undo.close()
    assert name not in list_multipliers()
    with pytest.raises(MultiplierError, match="unknown multiplier"):
        get_multiplier(spec)


# ---- a kernel backend -----------------------------------------------------------------------


def _random_table(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-(2**20), 2**20, (rows, cols), generator=g, dtype=torch.int32)


def test_recipe_kernel_backend(undo):
    name = "recipe_wrapped"
    calls: list[str] = []

    def wrap(op):
        def run(*args, **kwargs):
            calls.append(op)
            return getattr(reference, op)(*args, **kwargs)

        return run

    undo.callback(kernels_dispatch._BACKENDS.pop, name, None)
    register_backend(
        Backend(
            name,
            wrap("conv2d"),
            wrap("linear"),
            wrap("matmul"),
            supports=lambda table, device: device.type == "cpu",
            cost=lambda table, problem: None,  # never chosen by `auto`
        )
    )
    assert name in list_backends()
    g = torch.Generator().manual_seed(0)
    for seed, (bits_a, bits_b) in enumerate(((8, 8), (4, 6), (3, 3))):
        table = _random_table(1 << bits_a, 1 << bits_b, seed)
        for stride, padding, dilation, groups in ((1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 3)):
            geom = ConvGeometry.of(3, stride, padding, dilation, groups)
            x = torch.randint(0, 1 << bits_a, (2, 6, 7, 8), generator=g)
            w = torch.randint(0, 1 << bits_b, (6, 6 // groups, 3, 3), generator=g)
            want = lut_conv2d(x, w, table, geom, pad_index=1, backend="reference")
            got = lut_conv2d(x, w, table, geom, pad_index=1, backend=name)
            assert got.dtype == torch.int64 and torch.equal(got, want)
        a = torch.randint(0, 1 << bits_a, (5, 9), generator=g)
        b = torch.randint(0, 1 << bits_b, (4, 9), generator=g)
        assert torch.equal(lut_linear(a, b, table, backend=name), lut_linear(a, b, table))
        a3 = torch.randint(0, 1 << bits_a, (2, 3, 7), generator=g)
        b3 = torch.randint(0, 1 << bits_b, (2, 7, 4), generator=g)
        got = lut_matmul(a3, b3, table, backend=name)
        assert torch.equal(got, lut_matmul(a3, b3, table, backend="reference"))
    assert {"conv2d", "linear", "matmul"} <= set(calls)

    # a plan forces it per layer: the same numbers as the reference backend
    model, x = _tiny_cnn(), torch.randn(8, 2, 6, 6)
    calls.clear()
    ours = approximate(model, Plan.uniform("drum:4@u8", backend=name), x)
    ref = approximate(model, Plan.uniform("drum:4@u8", backend="reference"), x)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    assert "conv2d" in calls and "linear" in calls

    undo.close()
    assert name not in list_backends()
    with pytest.raises(ConfigError, match="unknown kernel backend"):
        Plan.uniform("exact", backend=name)


# ---- a number format ------------------------------------------------------------------------


@dataclass(frozen=True)
class GridFormat(Format):
    """`recipe_grid:N`: N-bit signed values k / 2**(N-1) in [-1, 1), round to nearest."""

    n: int = 4
    kind: ClassVar[str] = "recipe_grid"

    @property
    def bits(self) -> int:
        return self.n

    @property
    def spec(self) -> str:
        return f"recipe_grid:{self.n}"

    def _quantize(self, x, generator):
        step = 2.0 ** (1 - self.n)
        q = (x.detach() / step).round().clamp(-(2 ** (self.n - 1)), 2 ** (self.n - 1) - 1) * step
        return straight_through(x, q)


def _build_grid(match, arg, opts):
    if arg is None or not re.fullmatch(r"\d+", arg) or not 2 <= int(arg) <= 16:
        raise opts.bad_arg(arg, "the number of bits N = 2..16, e.g. recipe_grid:4")
    opts.finish()
    return GridFormat(int(arg))


def test_recipe_number_format(undo):
    form = "recipe_grid:N (test recipe: N-bit grid on [-1, 1))"

    def unregister() -> None:
        formats_base._REGISTRY[:] = [e for e in formats_base._REGISTRY if e.form != form]

    undo.callback(unregister)
    register_format("recipe_grid", form)(_build_grid)
    assert form in format_forms()

    fmt = parse_format("recipe_grid:3")
    assert fmt == GridFormat(3) and fmt.bits == 3 and parse_format(fmt.spec) == fmt
    assert Format.from_dict(fmt.to_dict()) == fmt
    with pytest.raises(FormatError, match="recipe_grid:99"):
        parse_format("recipe_grid:99")
    with pytest.raises(FormatError, match="unknown option"):
        parse_format("recipe_grid:3,x=1")
    x = torch.tensor([-2.0, -0.3, 0.0, 0.12, 0.4, 0.9], requires_grad=True)
    y = fmt.quantize(x)
    assert y.tolist() == [-1.0, -0.25, 0.0, 0.0, 0.5, 0.75]
    y.sum().backward()  # differentiable: straight through
    assert x.grad.tolist() == [1.0] * 6

    # a FormatSpec plan layer holds its weights in the new format
    model, data = _tiny_mlp(), torch.randn(16, 6)
    plan = Plan(layers={"*": {"weight_format": "recipe_grid:3"}})
    assert isinstance(plan.layers["*"].compute, FormatSpec)
    approx = approximate(model, plan, data)
    assert isinstance(approx[0], FormatLinear) and approx[0].weight_format == fmt
    assert approx.approximation.layers[0].weight_format == "recipe_grid:3"
    with torch.no_grad():
        h = F.relu(F.linear(data, fmt.quantize(model[0].weight), model[0].bias))
        want = F.linear(h, fmt.quantize(model[2].weight), model[2].bias)
        assert torch.equal(approx(data), want)

    undo.close()
    with pytest.raises(FormatError, match="unknown number format"):
        parse_format("recipe_grid:3")


# ---- an error model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Jitter(ErrorModel):
    """Multiply the value by 1 + spread * (u - 1/2), u drawn from the trial's stream 0."""

    kind: ClassVar[str] = "recipe_jitter"
    spread: float = 1.0

    def corrupt(self, values, draws):
        u = draws.uniform(0).to(values.dtype)  # (n, 1): the trial's own draw
        return values * (1 + self.spread * (u - 0.5))


def test_recipe_error_model(tmp_path, undo):
    from axdnn.inject import (
        CampaignConfig,
        CampaignStore,
        error_models,
        parse_error_model,
        run_campaign,
    )

    kind = "recipe_jitter"
    undo.callback(error_models._POSITIONAL.pop, kind, None)
    undo.callback(error_models.MODELS.pop, kind, None)
    error_models.MODELS[kind] = Jitter
    error_models._POSITIONAL[kind] = "spread"

    assert parse_error_model("recipe_jitter:0.5") == Jitter(0.5)
    assert parse_error_model("recipe_jitter,spread=0.25") == Jitter(0.25)
    assert parse_error_model(Jitter(3.0).spec) == Jitter(3.0)
    with pytest.raises(InjectionError, match="unknown option"):
        parse_error_model("recipe_jitter,width=1")

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(24, 6)
    y = model(x).argmax(dim=1).detach()

    def trials(seed: int, block: int, db: str) -> list[tuple]:
        config = CampaignConfig(
            name="jitter", error_model="recipe_jitter:2", trials=60, block_size=block, seed=seed
        )
        result = run_campaign(model, x, y, config, tmp_path / db)
        assert result.trials == 60 and result.status == "done"
        keys = ("trial", "site", "sample", "element", "original", "corrupted")
        return [tuple(r[k] for k in keys) for r in CampaignStore(tmp_path / db).trials("jitter")]

    first = trials(7, 60, "a.db")
    assert first == trials(7, 20, "b.db")  # same seed: the same faults, however blocked
    assert first != trials(8, 60, "c.db")
    assert all(r[5] != r[4] for r in first if r[4] not in (0.0, None))

    undo.close()
    with pytest.raises(InjectionError, match="unknown error model"):
        parse_error_model("recipe_jitter:0.5")


# ---- an injection site kind -----------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 5))
        self.w2 = nn.Parameter(torch.randn(5, 3))

    def forward(self, x):
        return torch.matmul(x @ self.w1, self.w2)


class _OpNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block = _Block()

    def forward(self, x):
        return torch.softmax(self.block(x), dim=1)


def test_recipe_injection_site():
    from axdnn.inject import (
        FaultPlan,
        Injector,
        SiteFaults,
        list_op_sites,
        parse_error_model,
        parse_site,
        site_shapes,
    )
    from axdnn.inject.sites import check_site

    model, x = _OpNet().eval(), torch.randn(3, 4)
    cost = count_ops(model, (4,))
    names = [layer.name for layer in cost.layers]
    assert names == ["block.matmul#0", "block.matmul#1"]
    assert [layer.macs for layer in cost.layers] == [4 * 5, 5 * 3]
    seen = list_op_sites(model, x)
    assert set(names) <= set(seen) and "softmax#0" in seen

    site = parse_site(names[1])  # the cost model's record name is a site
    assert site.functional and site.kind == "output" and str(site) == names[1]
    assert check_site(model, site) is None
    assert site_shapes(model, [site], x) == [(3,)]
    with pytest.raises(InjectionError, match="no such functional op"):
        site_shapes(model, [parse_site("block.matmul#2")], x)

    injector = Injector(model, [site], parse_error_model("value:0"), [(3,)], scope="all")
    with torch.no_grad():
        clean = model(x)
        with injector:
            injector.arm(FaultPlan({0: SiteFaults(torch.tensor([1]), np.array([0]))}))
            hit = model(x)
        after = model(x)
    assert torch.equal(after, clean)  # the injector left nothing behind
    assert torch.equal(hit[[0, 2]], clean[[0, 2]])
    assert torch.allclose(hit[1], torch.full((3,), 1 / 3))  # softmax of the zeroed matmul


# ---- a zoo model ----------------------------------------------------------------------------


def test_recipe_zoo_model(undo):
    from axdnn.models import build_model as build_zoo
    from axdnn.models import default_lr, list_models, register_model, registry

    name = "recipe_tiny"
    assert name not in list_models()
    undo.callback(registry._LEARNING_RATES.pop, name, None)
    undo.callback(registry._REGISTRY.pop, name, None)

    @register_model(name, lr=3e-3)
    def recipe_tiny(in_channels: int, num_classes: int, width: int = 4) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    assert name in list_models() and default_lr(name) == 3e-3
    model = build_zoo(name, 1, 10, width=6)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    report = count_ops(model, (1, 8, 8))
    assert report.total_macs == 8 * 8 * 6 * 1 * 9 + 6 * 10
    approx = approximate(model, Plan.uniform("exact"), torch.randn(8, 1, 8, 8))
    assert [r.name for r in approx.approximation.layers] == ["0", "5"]

    undo.close()
    assert name not in list_models() and default_lr(name) == registry.DEFAULT_LR


# ---- a layer type ---------------------------------------------------------------------------


def test_recipe_layer_type_has_its_test():
    text = (ROOT / "tests" / "nn" / "test_nn_layer_map.py").read_text()
    assert "layer_map" in text and "DEFAULT_LAYER_MAP" in text


class UserLinear(nn.Linear):
    """A user's nn.Linear subclass that computes exactly like nn.Linear."""


def test_recipe_layer_type_user_linear_through_layer_map():
    torch.manual_seed(0)
    model = nn.Sequential(UserLinear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    plain = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    plain.load_state_dict(model.state_dict())
    x, plan = torch.randn(16, 6), Plan.uniform("drum:4@u8")
    with pytest.raises(ConfigError, match=r"UserLinear.*subclasses Linear.*layer_map"):
        approximate(model, plan, x)
    layer_map = {**DEFAULT_LAYER_MAP, (MultiplierSpec, UserLinear): ApproxLinear}
    approx = approximate(model, plan, x, layer_map=layer_map)
    assert type(approx[0]) is ApproxLinear and type(model[0]) is UserLinear
    assert [r.kind for r in approx.approximation.layers] == ["UserLinear", "Linear"]
    with torch.no_grad():
        assert torch.equal(approx(x), approximate(plain, plan, x)(x))
    assert count_ops(approx, (6,)).total_macs == 6 * 5 + 5 * 3


# ---- an experiment step and its report section ----------------------------------------------


def test_recipe_experiment_step_and_report_section(tmp_path, undo):
    from axdnn.experiment import schema
    from axdnn.experiment.runner import run_experiment, step_records
    from axdnn.experiment.steps import StepContext
    from axdnn.report import html
    from axdnn.report.html import Section, figure, new_figure, register_section, table

    kind = "recipe_echo"
    schema.experiment_model()  # the built-in kinds are registered first
    assert kind not in schema.STEP_KINDS and kind not in html.registered_kinds()
    undo.callback(schema.experiment_model.cache_clear)
    undo.callback(schema.STEP_KINDS.pop, kind, None)
    undo.callback(html._RENDERERS.pop, kind, None)

    @schema.register_step
    class EchoStep(schema.StepConfig):
        """Doubles a number (a stand-in for a step's CLI runner)."""

        kind: Literal["recipe_echo"] = "recipe_echo"
        value: int | str = 3
        OUTPUTS = ("doubled",)

        def run(self, ctx: StepContext) -> dict:
            (ctx.step_dir / "echo.txt").write_text(str(self.value))
            return {"doubled": 2 * int(self.value), "seed": ctx.header.seed}

    @register_section(kind)
    def render_echo(step: dict, context) -> Section:
        record = step["record"]
        fig = new_figure(3, 2)
        fig.subplots().bar(["doubled"], [record["doubled"]])
        numbers = table(["quantity", "value"], [["doubled", record["doubled"]]])
        body = f'<p class="recipe-echo">doubled = {record["doubled"]}</p>'
        return Section(
            f"echo {step['name']}",
            body + figure(fig, "the doubled value", numbers),
            summary=f"doubled {record['doubled']}",
        )

    assert kind in schema.STEP_KINDS and kind in html.registered_kinds()
    file = tmp_path / "echo.yaml"
    file.write_text(
        "name: recipe echo\nseed: 5\nsteps:\n"
        "  - {kind: recipe_echo, value: 4}\n"
        "  - {kind: recipe_echo, name: again, value: '${recipe_echo.doubled}'}\n"
    )
    out = tmp_path / "run"
    result = run_experiment(file, out, progress=False, say=lambda _: None)
    assert [s["kind"] for s in result["steps"]] == [kind, kind]
    assert all(s["ran"] for s in result["steps"])
    records = step_records(out)
    assert records["recipe_echo"] == {"doubled": 8, "seed": 5}
    assert records["again"] == {"doubled": 16, "seed": 5}
    assert (out / "steps" / "again" / "echo.txt").read_text() == "8"
    page = Path(result["report"]).read_text()
    assert 'data-kind="recipe_echo" data-status="ok"' in page
    assert '<p class="recipe-echo">doubled = 8</p>' in page
    assert '<p class="recipe-echo">doubled = 16</p>' in page
    assert "echo again" in page and "<svg" in page and 'class="render-error"' not in page
    assert json.loads((out / "steps" / "again.json").read_text())["config"]["value"] == 8
    again = run_experiment(file, out, progress=False, say=lambda _: None)
    assert not any(s["ran"] for s in again["steps"])  # cached

    undo.close()
    assert kind not in schema.STEP_KINDS and kind not in html.registered_kinds()
    with pytest.raises(ConfigError, match="recipe_echo"):
        run_experiment(file, tmp_path / "run2", progress=False, say=lambda _: None)


def test_no_recipe_registration_leaks():
    """Runs after the recipe tests (file order): nothing they registered is still there."""
    from axdnn.experiment import schema
    from axdnn.inject import error_models
    from axdnn.models import list_models
    from axdnn.report.html import registered_kinds

    assert not [n for n in MODELS if n.startswith("recipe_")]
    assert not [n for n in list_multipliers() if n.startswith("recipe_")]
    assert not [n for n in list_backends() if n.startswith("recipe_")]
    assert not [f for f in format_forms() if f.startswith("recipe_")]
    assert not [n for n in error_models.MODELS if n.startswith("recipe_")]
    assert not [n for n in list_models() if n.startswith("recipe_")]
    assert not [k for k in schema.STEP_KINDS if k.startswith("recipe_")]
    assert not [k for k in registered_kinds() if k.startswith("recipe_")]
    assert LayerSpec(multiplier="exact").multiplier == "exact"
