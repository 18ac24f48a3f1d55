"""Report section of `train` steps: test accuracy, training curves, per-class accuracy and the
confusion matrix. Record keys: `model`, `data` (`spec`, `sizes`, `class_names`), `train_seconds`,
`history` (`epochs`: [{epoch, lr, train_loss, train_top1, val_loss, val_top1}], `best_epoch`,
`best_val_top1`), `test` (`top1`, `top5`, `loss`, `samples`, `per_class_accuracy`, `confusion`).
Approximate training adds `approx_training` (precision per kind and layer, workers, compression),
`memory_energy` (bytes per step per kind at the stored and fp32 widths, energy, savings) and
`parallel` (workers, ranks_identical, communication bytes and compression ratio, step losses)."""

from __future__ import annotations

from collections.abc import Sequence

from axdnn.report.html import (
    ReportContext,
    Section,
    fmt,
    kv_table,
    new_figure,
    note,
    pct,
    register_section,
    table,
)
from axdnn.report.html import figure as report_figure

KINDS = ("weights", "activations", "gradients")


def curves_figure(
    epochs: list[dict],
    caption: str,
    best_epoch: int | None = None,
    references: Sequence[tuple[str, float]] = (),
) -> str:
    """Loss and top-1 per epoch (train and validation) with a table of every epoch; optional
    horizontal reference accuracies (label, fraction), e.g. float and before fine-tuning."""
    if not epochs:
        return note("no epochs were run, so there is no curve to draw")
    xs = [e.get("epoch") for e in epochs]
    fig = new_figure(7.2, 3.2)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for key, label, style in (("train_loss", "train", "o-"), ("val_loss", "validation", "s--")):
        loss_ax.plot(xs, [e.get(key) for e in epochs], style, label=label)
    for key, label, style in (("train_top1", "train", "o-"), ("val_top1", "validation", "s--")):
        acc_ax.plot(xs, [100 * e.get(key, float("nan")) for e in epochs], style, label=label)
    for (label, value), color in zip(references, ("black", "tab:red", "tab:green"), strict=False):
        acc_ax.axhline(100 * value, color=color, linestyle=":", linewidth=1.2, label=label)
    if best_epoch is not None and best_epoch in xs:
        acc_ax.axvline(best_epoch, color="gray", linewidth=0.8, alpha=0.6)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="top-1 (%)", title="top-1 accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        if len(xs) <= 12:
            ax.set_xticks(xs)
    rows = [
        [
            e.get("epoch"),
            e.get("lr"),
            e.get("train_loss"),
            pct(e.get("train_top1")),
            e.get("val_loss"),
            pct(e.get("val_top1")),
            "yes" if e.get("epoch") == best_epoch else "",
        ]
        for e in epochs
    ]
    numbers = table(
        ["epoch", "lr", "train loss", "train top-1 (%)", "val loss", "val top-1 (%)", "best"], rows
    )
    if references:
        numbers += table(["reference", "top-1 (%)"], [[k, pct(v)] for k, v in references])
    return report_figure(fig, caption, numbers)


def class_table(
    per_class: list[float] | None, confusion: list[list[int]] | None, names: list | None
) -> str:
    """Per-class accuracy with the confusion matrix (rows true class, columns predicted)."""
    if not per_class:
        return ""
    names = list(names or range(len(per_class)))
    confusion = confusion or []
    headers = ["class", "accuracy (%)"] + [f"→{n}" for n in names[: len(confusion)]]
    rows = []
    for i, acc in enumerate(per_class):
        counts = confusion[i] if i < len(confusion) else []
        rows.append([names[i] if i < len(names) else i, pct(acc), *counts])
    caption = "per-class accuracy and confusion matrix (rows: true class, →: predicted class)"
    return table(headers, rows, caption, row_headers=True)


def settings_table(approx: dict) -> str:
    """The precision of each tensor kind (and per-layer overrides) and the compression used."""
    precision = approx.get("precision") or {}
    rows = [[kind, precision.get(kind) or "fp32"] for kind in KINDS]
    for glob, overrides in (precision.get("layers") or {}).items():
        rows += [[f"{kind} in {glob}", spec] for kind, spec in overrides.items()]
    if precision:
        rows += [
            ["scaling", precision.get("scaling")],
            ["fp32 master weights", "yes" if precision.get("master_weights") else "no"],
            ["seed", precision.get("seed")],
        ]
    compression = approx.get("compression") or {}
    rows += [
        ["workers", approx.get("workers")],
        [
            "compressor",
            compression.get(
                "compressor", "none (fp32 all-reduce)" if (approx.get("workers") or 1) > 1 else "-"
            ),
        ],
    ]
    if compression.get("compressor") == "topk":
        rows.append(["top-k fraction sent", compression.get("ratio")])
    elif compression.get("compressor") == "adacomp":
        rows.append(["AdaComp bin length", compression.get("bin_size")])
    elif compression.get("compressor") == "powersgd":
        rows.append(["PowerSGD rank", compression.get("rank")])
    return table(["setting", "value"], rows, "approximate training settings")  # fmt: skip


def memory_table(memory: dict) -> str:
    """Bytes moved per step per tensor kind, at the stored widths and at fp32, and the savings."""
    run, ref = memory.get("bytes_per_step") or {}, memory.get("fp32_bytes_per_step") or {}
    rows = [[k, fmt(run.get(k), 6), fmt(ref.get(k), 6)] for k in KINDS]
    rows.append(["total", fmt(sum(run.values()), 6), fmt(sum(ref.values()), 6)])
    energy, fp32 = memory.get("energy_pj_per_step"), memory.get("fp32_energy_pj_per_step")
    caption = (
        f"memory traffic per training step ({memory.get('memory')}): energy {fmt(energy)} pJ "
        f"against {fmt(fp32)} pJ at fp32: {pct(memory.get('saved_vs_fp32'))} % saved vs fp32, "
        f"{pct(memory.get('saved_vs_fp16'))} % vs plain fp16"
    )
    return table(["tensor kind", "bytes", "bytes at fp32"], rows, caption)


def communication_table(parallel: dict) -> str:
    """What one rank sent, against a plain fp32 all-reduce, and whether the replicas agree."""
    c = parallel.get("communication") or {}
    pairs = [
        ("workers", parallel.get("workers")),
        ("bytes sent per rank (ring model)", fmt(c.get("wire_bytes"), 8)),
        ("bytes fp32 all-reduce would send", fmt(c.get("fp32_wire_bytes"), 8)),
        ("compression ratio", fmt(c.get("compression_ratio"))),
        ("bytes handed to collectives", c.get("payload_bytes")),
        ("collective calls", c.get("calls")),
        ("replicas identical (bit for bit)", parallel.get("ranks_identical")),
    ]
    return kv_table(pairs, "gradient communication")


def approx_parts(record: dict) -> str:
    """Settings, memory energy and communication of an approximate training run ('' if none)."""
    approx = record.get("approx_training")
    if not approx:
        return ""
    parts = ["<h3>approximate training</h3>", settings_table(approx)]
    if record.get("memory_energy"):
        parts.append(memory_table(record["memory_energy"]))
    if record.get("parallel"):
        parts.append(communication_table(record["parallel"]))
    return "".join(parts)


@register_section("train")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    test = r.get("test") or {}
    history = r.get("history") or {}
    data = r.get("data") or {}
    sizes = data.get("sizes") or {}
    size_text = ", ".join(f"{k} {v}" for k, v in sizes.items())
    pairs = [
        ("model", r.get("model")),
        ("data", f"{data.get('spec', '?')}" + (f" ({size_text})" if size_text else "")),
        ("test top-1 (%)", pct(test.get("top1"))),
        ("test top-5 (%)", pct(test.get("top5"))),
        ("test loss", fmt(test.get("loss"))),
        ("test samples", test.get("samples")),
        ("best validation epoch", history.get("best_epoch")),
        ("best validation top-1 (%)", pct(history.get("best_val_top1"))),
        ("training time (s)", fmt(r.get("train_seconds"), 3)),
    ]
    parts = [kv_table(pairs, "accuracy"), "<h3>training curves</h3>"]
    parts.append(
        curves_figure(
            history.get("epochs") or [],
            "Training curves: loss and top-1 accuracy per epoch on the training and validation "
            "splits (the vertical line marks the best validation epoch, whose weights are kept).",
            history.get("best_epoch"),
        )
    )
    parts.append(approx_parts(r))
    parts.append("<h3>per class (test split)</h3>")
    parts.append(
        class_table(test.get("per_class_accuracy"), test.get("confusion"), data.get("class_names"))
    )
    summary = f"test top-1 {pct(test.get('top1'))} %" if "top1" in test else ""
    if r.get("memory_energy"):
        summary += f", memory energy {pct(r['memory_energy'].get('saved_vs_fp32'))} % saved"
    if r.get("parallel"):
        ratio = (r["parallel"].get("communication") or {}).get("compression_ratio")
        summary += f", {fmt(ratio, 3)}x less sent"
    return Section(step["name"], "".join(parts), summary)
