"""Report section of `dynamic` steps: per configuration, test accuracy against operations and
against measured time (dense = 1), and the per-layer skip rates of each configuration.

Record keys: `checkpoint`, `model`, `data`, `budget_points`, `dense_accuracy`,
`dense_macs_per_input`, `samples` {train, calibration, test}, `exit_heads` {points,
train_accuracy}, `configs` [{name, accuracy, drop_points, changed_predictions, effort {ops_ratio,
dense_macs, executed_macs, overhead_ops, exits, layers [{name, mechanism, skip_rate,
overhead_ops}]}, timing [{batch_size, speedup}]}], `best` {name, ops_ratio, speedup,
drop_points} or null."""

from __future__ import annotations

from axdnn.report.html import (
    ReportContext,
    Section,
    fmt,
    kv_table,
    new_figure,
    note,
    pct,
    plain,
    register_section,
    table,
)
from axdnn.report.html import figure as report_figure


def _configs(record: dict) -> list[dict]:
    return [c for c in record.get("configs") or [] if isinstance(c, dict)]


def _num(value, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) else default


def _speed(config: dict, batch: int) -> float | None:
    for t in config.get("timing") or []:
        if isinstance(t, dict) and t.get("batch_size") == batch:
            return _num(t.get("speedup"), None)
    return None


def _batches(configs: list[dict]) -> list[int]:
    seen = [t.get("batch_size") for c in configs for t in c.get("timing") or []]
    return list(dict.fromkeys(b for b in seen if isinstance(b, int)))


def _tradeoff(record: dict) -> str:
    configs = _configs(record)
    if not configs:
        return note("no configuration was measured")
    batches = _batches(configs)
    fig = new_figure(7.2, 3.4)
    axes = fig.subplots(1, 2)
    dense = 100 * _num(record.get("dense_accuracy"))
    for c in configs:
        acc = 100 * _num(c.get("accuracy"))
        axes[0].plot(_num((c.get("effort") or {}).get("ops_ratio"), 1.0), acc, "o")
        axes[0].annotate(
            plain(c.get("name")), ((c.get("effort") or {}).get("ops_ratio", 1), acc), fontsize=7
        )
        for batch, marker in zip(batches, "s^v", strict=False):
            speed = _speed(c, batch)
            if speed is not None:
                axes[1].plot(speed, acc, marker, label=f"{c.get('name')} b{batch}")
    for ax, label in zip(axes, ("operations reduction (x)", "measured speed-up (x)"), strict=True):
        ax.axhline(dense, color="black", linestyle=":", linewidth=1)
        ax.axvline(1.0, color="gray", linewidth=0.8)
        ax.set(xlabel=label, ylabel="test top-1 (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6)
    rows = [
        [
            c.get("name"),
            pct(c.get("accuracy")),
            fmt(c.get("drop_points"), 3),
            fmt((c.get("effort") or {}).get("ops_ratio"), 3),
            *[fmt(_speed(c, b), 3) for b in batches],
            c.get("changed_predictions"),
            ", ".join(f"{k}: {v}" for k, v in ((c.get("effort") or {}).get("exits") or {}).items()),
        ]
        for c in configs
    ]
    numbers = table(
        [
            "config",
            "accuracy (%)",
            "drop (points)",
            "ops reduction (x)",
            *[f"speed-up b{b} (x)" for b in batches],
            "changed predictions",
            "exits",
        ],
        rows,
        row_headers=True,
    )
    caption = (
        "Test accuracy against operations (dense MACs / (executed MACs + overhead)) and against "
        "the measured wall-clock speed-up over the same model run densely (the stricter of the "
        "original module and the dense chain); the dotted line is dense accuracy."
    )
    return report_figure(fig, caption, numbers, wide=True)


def _skip_rates(record: dict) -> str:
    configs = _configs(record)
    layers = list(
        dict.fromkeys(
            str(layer.get("name"))
            for c in configs
            for layer in (c.get("effort") or {}).get("layers") or []
            if not str(layer.get("name")).startswith("exit@")
        )
    )
    if not layers:
        return note("no layer was counted")
    fig = new_figure(7.2, 3.2)
    ax = fig.add_subplot()
    width = 0.8 / max(len(configs), 1)
    for k, c in enumerate(configs):
        rates = {
            str(layer.get("name")): _num(layer.get("skip_rate"))
            for layer in (c.get("effort") or {}).get("layers") or []
        }
        ax.bar(
            [i + k * width for i in range(len(layers))],
            [100 * rates.get(name, 0.0) for name in layers],
            width,
            label=plain(c.get("name")),
        )
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(layers))],
        [plain(n) for n in layers],
        rotation=45,
        fontsize=7,
        ha="right",
    )
    ax.set(ylabel="MACs skipped (%)", title="per-layer skip rate")
    ax.legend(fontsize=6)
    rows = []
    for c in configs:
        for layer in (c.get("effort") or {}).get("layers") or []:
            rows.append(
                [
                    c.get("name"),
                    layer.get("name"),
                    layer.get("mechanism"),
                    pct(layer.get("skip_rate")),
                    layer.get("overhead_ops"),
                ]
            )
    numbers = table(["config", "layer", "mechanism", "skipped (%)", "overhead ops"], rows)
    caption = "Share of each layer's dense MACs not executed on the test split, per configuration."
    return report_figure(fig, caption, numbers, wide=True)


@register_section("dynamic")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    best = r.get("best") or {}
    samples = r.get("samples") or {}
    heads = r.get("exit_heads") or {}
    pairs = [
        ("checkpoint", r.get("checkpoint")),
        ("model", r.get("model")),
        ("data", r.get("data")),
        ("dense test accuracy (%)", pct(r.get("dense_accuracy"))),
        ("dense MACs per input", r.get("dense_macs_per_input")),
        ("budget (accuracy points, held-out training data)", r.get("budget_points")),
        (
            "samples (exit training / calibration / test)",
            f"{samples.get('train')} / {samples.get('calibration')} / {samples.get('test')}",
        ),
        ("exit points", ", ".join(map(str, heads.get("points") or [])) or "none"),
        ("best within budget", best.get("name", "none")),
    ]
    parts = [
        kv_table(pairs),
        "<h3>operations and time against accuracy</h3>",
        _tradeoff(r),
        "<h3>per-layer skip rates</h3>",
        _skip_rates(r),
    ]
    summary = (
        f"{best.get('name')}: {fmt(best.get('ops_ratio'), 3)}x fewer ops, "
        f"{fmt(best.get('speedup'), 3)}x faster, drop {fmt(best.get('drop_points'), 3)} points"
        if best
        else "no configuration within budget"
    )
    return Section(step["name"], "".join(parts), summary)
