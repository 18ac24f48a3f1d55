"""Memory energy of training traffic: the bits a `PrecisionSession` counted per tensor kind, priced
with the cost model's 64-bit access energy (`axdnn.cost.energy.EnergyTable`, Horowitz 45 nm by
default), against the same values moved at fp32 and at plain fp16."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from axdnn.cost.energy import HOROWITZ_45NM, EnergyTable
from axdnn.train.precision import KINDS, Traffic


@dataclass
class MemoryEnergy:
    """Per-step memory traffic (bytes) and energy (pJ) of a run, and what it saves."""

    memory: str
    steps: int
    bytes_per_step: dict[str, float]
    fp32_bytes_per_step: dict[str, float]
    energy_pj_per_step: float
    fp32_energy_pj_per_step: float
    saved_vs_fp32: float
    saved_vs_fp16: float

    def to_dict(self) -> dict:
        return asdict(self)


def price_traffic(
    traffic: Traffic,
    reference: Traffic,
    *,
    table: EnergyTable | None = None,
    memory: str = "dram",
) -> MemoryEnergy:
    """Price `traffic` (the run) and `reference` (the same values at 32 bits) per step at
    memory level `memory` ('dram', 'sram'); savings are fractions of the fp32 and fp16 energy."""
    table = table or HOROWITZ_45NM
    access = table.access_64b(memory)
    steps = max(traffic.steps, 1)
    run_bits = {k: traffic.kinds[k].bits / steps for k in KINDS}
    ref_bits = {k: reference.kinds[k].bits / steps for k in KINDS}
    total, ref_total = sum(run_bits.values()), sum(ref_bits.values())
    fp16_total = ref_total / 2
    return MemoryEnergy(
        memory=memory,
        steps=traffic.steps,
        bytes_per_step={k: v / 8 for k, v in run_bits.items()},
        fp32_bytes_per_step={k: v / 8 for k, v in ref_bits.items()},
        energy_pj_per_step=total / 64 * access,
        fp32_energy_pj_per_step=ref_total / 64 * access,
        saved_vs_fp32=1 - total / ref_total if ref_total else 0.0,
        saved_vs_fp16=1 - total / fp16_total if fp16_total else 0.0,
    )
