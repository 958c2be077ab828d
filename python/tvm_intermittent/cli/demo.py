"""The ``demo`` command: a zoo model from download to QEMU output, checked against TFLite Micro,
then run again on a batteryless device that loses power many times per inference.

Steps: fetch the model (keyword spotting by default), compile it for the board, build the
firmware once, run it on QEMU for a few realistic inputs (speech clips turned into the
model's features), run TFLite Micro on the same inputs, and report. Then run the first input
under the board's capacitor model (each charge pays for a fixed number of instructions,
after which the power fails and the capacitor recharges from the harvester), report what
the power failures cost, check the outputs equal the uninterrupted run's, and plot the
power cycles.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path



from ..check import compare_outputs
from .environment import Environment


@dataclasses.dataclass
class DemoRow:
    """One input of the demo."""

    description: str
    ours: str
    reference: str
    max_lsb: int | None
    instructions_model: int
    match: bool


@dataclasses.dataclass
class DemoReport:
    model: str
    title: str
    board: str
    compile_seconds: float
    arena_bytes: int
    weight_bytes: int
    sizes: dict
    rows: list[DemoRow]
    anchor_instructions: int
    intermittent: object = None  # sim.report.IntermittentReport
    plot: str | None = None

    @property
    def all_match(self) -> bool:
        rows_ok = all(row.match for row in self.rows)
        if self.intermittent is None:
            return rows_ok
        return rows_ok and self.intermittent.finished and self.intermittent.outputs_match

    @property
    def instructions_per_inference(self) -> int:
        return max(row.instructions_model for row in self.rows) if self.rows else 0

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["intermittent"] = self.intermittent.to_dict() if self.intermittent else None
        data["all_match"] = self.all_match
        data["instructions_per_inference"] = self.instructions_per_inference
        data["ratio_to_cmsis_nn"] = (self.instructions_per_inference / self.anchor_instructions
                                     if self.model == "kws" else None)
        return data

    def text(self) -> str:
        lines = [f"{self.title} ({self.model}) on {self.board}",
                 f"  compiled in {self.compile_seconds:.1f} s; arena {self.arena_bytes:,} B, "
                 f"weights {self.weight_bytes:,} B; firmware text {self.sizes.get('text', 0):,} B, "
                 f"data {self.sizes.get('data', 0):,} B, bss {self.sizes.get('bss', 0):,} B",
                 "",
                 f"  {'#':<2} {'expected':<10} {'QEMU top-1':<11} {'TFLM top-1':<11} "
                 f"{'max diff':>9} {'instructions':>13}"]
        for i, row in enumerate(self.rows):
            expected = row.description.split(":", 1)[0]
            diff = f"{row.max_lsb} LSB" if row.max_lsb is not None else "-"
            lines.append(f"  {i:<2} {expected:<10} {row.ours:<11} {row.reference:<11} "
                         f"{diff:>9} {row.instructions_model:>13,}")
        lines.append("")
        lines += [f"  input {i}: {row.description.split(':', 1)[-1].strip()}"
                  for i, row in enumerate(self.rows)]
        lines.append("")
        rows_ok = all(row.match for row in self.rows)
        verdict = ("every output equals TFLite Micro's bit for bit" if rows_ok
                   else "MISMATCH: some output differs from TFLite Micro's")
        lines.append(f"  {verdict}")
        if self.model == "kws":
            ratio = self.instructions_per_inference / self.anchor_instructions
            lines.append(f"  {self.instructions_per_inference:,} instructions per inference: "
                         f"{ratio:.2f}x CMSIS-NN's {self.anchor_instructions:,} on the same board")
        if self.intermittent is not None:
            lines += ["", "Now on a batteryless device: the same firmware under the board's "
                      "capacitor model", ""]
            lines += ["  " + line for line in self.intermittent.render().splitlines()]
            if self.plot:
                lines.append(f"  power cycles plotted to {self.plot}")
        return "\n".join(lines)


def _label(labels, index: int) -> str:
    return labels[index] if labels and 0 <= index < len(labels) else str(index)


def run_demo(model: str, board: str, count: int, env: Environment,
             plot: str | None = "intm-demo-power-cycles.png") -> DemoReport:
    """Compile and run ``model`` from the zoo; see the module docstring."""
    from .. import builder, reference, sim, zoo  # pylint: disable=import-outside-toplevel
    from .core import CMSIS_NN_KWS_INSTRUCTIONS  # pylint: disable=import-outside-toplevel

    with env.step(f"fetching the zoo model {model!r}"):
        entry = zoo.get(model, progress=env.log)
    samples = zoo.sample_inputs(model, count=count)
    with env.step(f"compiling {entry.path.name} for {board}"):
        artifact = builder.build(entry.path, "intermittent/" + board, name=model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="intm-demo-") as tmp:
        project = artifact.export(Path(tmp) / model)
        with env.step("building the firmware"):
            elf = sim.build_project(project, kind="qemu")
        sizes = sim.section_sizes(elf)
        scales = reference.output_lsb_scales(entry.path)
        for array, description in env.progress(samples, desc="inferences on QEMU"):
            result = sim.run(project, [array], kind="qemu")
            expected = reference.run_tflite_micro(entry.path, [array])
            check = compare_outputs(result.outputs, expected, lsb_scales=scales, max_lsb=0)
            out = check.outputs[0]
            rows.append(DemoRow(description, _label(entry.labels, out.top1_ours),
                                _label(entry.labels, out.top1_reference), out.max_lsb,
                                int(result.instructions_model), check.ok))
        the_board = artifact.board
        schedule = sim.power.Capacitor(the_board)
        with env.step(f"running input 0 under power failures ({the_board.capacitor_f * 1e6:g} uF "
                      f"capacitor, {the_board.harvest_w * 1e3:g} mW harvested)"):
            intermittent = sim.measure_intermittent(project, [samples[0][0]], schedule,
                                                    board=the_board)
        if plot:
            from ..sim.timeline import plot_power_cycles, power_timeline  # pylint: disable=C0415

            plot_power_cycles(power_timeline(intermittent.failure_run, schedule, the_board), plot,
                              f"{entry.title} on {the_board.name}: "
                              f"{the_board.capacitor_f * 1e6:g} uF, "
                              f"{the_board.harvest_w * 1e3:g} mW harvested")
    return DemoReport(model, entry.title, board, artifact.compile_seconds,
                      artifact.sources.arena_bytes, artifact.sources.weight_bytes, sizes, rows,
                      CMSIS_NN_KWS_INSTRUCTIONS, intermittent, plot)


