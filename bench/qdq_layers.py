"""QDQ models against onnxruntime, operator by operator and end to end, per rounding.

Run:  .venv/bin/python bench/qdq_layers.py [--model qdq.onnx] [--inputs 32] [--json out.json]

Without ``--model`` it quantizes the MCUNet-shaped CNN of ``tests/qdq_models.py`` (seed 0,
onnxruntime ``quantize_static``: QDQ, uint8 activations, per-channel int8 weights, MinMax on
8 seeded N(0, 1) batches). Two builds of the same imported module differ only in the
function attribute ``intermittent.requantize_rounding``: ``single`` (the default for ONNX
models: one rounding of the exact product) and ``double`` (TFLM's two roundings, the
default for TFLite models). Both run on the host build (the same C as the firmware;
``tests/test_qdq_onnx.py`` runs the model on QEMU).

Reported, for ``--inputs`` seeded N(0, 1) inputs:

- per operator, alone: a model of that one operator between its Q/DQ pairs, fed the float
  tensor onnxruntime computed before it; the share of its outputs that differ from
  onnxruntime's and the largest difference, in steps of its output scale. This finds the
  operator that departs first, without the differences of earlier layers.
- end to end: per input, the largest difference of the model output in output steps, and
  the instructions of one inference on QEMU (``intm_model_run``, first input), which is
  what each rounding costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import qdq_models  # noqa: E402

import tvm_intermittent as ti  # noqa: E402
from tvm_intermittent import reference, sim  # noqa: E402
from tvm_intermittent.frontend import load_model  # noqa: E402
from tvm_intermittent.transform.quantized_to_integer import REQUANTIZE_ROUNDING_ATTR  # noqa

ROUNDINGS = ("single", "double")
_QDQ = ("QuantizeLinear", "DequantizeLinear")


def _project(model, rounding: str, directory: Path) -> Path:
    imported = load_model(model)
    imported.mod["main"] = imported.mod["main"].with_attr(REQUANTIZE_ROUNDING_ATTR, rounding)
    return ti.build(imported, name="qdq").export(directory, overwrite=True)


def _steps(ours, theirs, scale: float) -> np.ndarray:
    return np.abs(ours.astype(np.float64) - theirs.astype(np.float64)) / scale


class _Graph:
    """The QDQ model's nodes, initializers, shapes, producers and consumers."""

    def __init__(self, model):
        self.model = model
        self.init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                       for v in (list(inferred.graph.value_info) + list(inferred.graph.input)
                                 + list(inferred.graph.output))}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.order = {id(n): k for k, n in enumerate(model.graph.node)}

    def float_tensors(self):
        """Tensors that an activation QuantizeLinear quantizes (not the model inputs)."""
        inputs = {i.name for i in self.model.graph.input}
        return [n.input[0] for n in self.model.graph.node
                if n.op_type == "QuantizeLinear" and n.input[0] not in self.init
                and n.input[0] not in inputs]

    def with_outputs(self, names):
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for name in names:
            model.graph.output.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, self.shapes[name]))
        return model

    def alone(self, op):
        """``op`` between its Q/DQ pairs, its float inputs as graph inputs; or None."""
        quantize = next((c for c in self.consumers.get(op.output[0], [])
                         if c.op_type == "QuantizeLinear"), None)
        if quantize is None:
            return None
        dequantize = next(c for c in self.consumers[quantize.output[0]]
                          if c.op_type == "DequantizeLinear")
        nodes, inputs, seen = {id(op): op, id(quantize): quantize,
                               id(dequantize): dequantize}, [], set()

        def back(name):
            if name in self.init or name in seen:
                return
            seen.add(name)
            node = self.producer.get(name)
            if node is None:  # a graph input
                inputs.append(name)
                return
            nodes[id(node)] = node
            if node.op_type == "QuantizeLinear" and node.input[0] not in self.init:
                if node.input[0] not in inputs:
                    inputs.append(node.input[0])
                return
            for i in node.input:
                back(i)

        for name in op.input:
            back(name)
        ordered = sorted(nodes.values(), key=lambda n: self.order[id(n)])
        used = {i for n in ordered for i in n.input}
        out = dequantize.output[0]
        graph = helper.make_graph(
            ordered, op.output[0],
            [helper.make_tensor_value_info(i, TensorProto.FLOAT, self.shapes[i]) for i in inputs],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, self.shapes[op.output[0]])],
            [i for i in self.model.graph.initializer if i.name in used])
        sub = helper.make_model(graph, opset_imports=self.model.opset_import)
        sub.ir_version = self.model.ir_version
        return sub, inputs, float(self.init[quantize.input[1]])


def bench(model, shape, count: int, directory: Path) -> dict:
    graph = _Graph(model)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    floats = graph.float_tensors()
    exposed = graph.with_outputs(floats)
    values = []
    for x in xs:
        outs = reference.run_onnxruntime(exposed, [x])
        values.append(dict(zip(floats, outs[len(model.graph.output):]))
                      | {model.graph.input[0].name: x})
    result = {"inputs": count, "operators": [], "end_to_end": {}}
    for op in model.graph.node:
        if op.op_type in _QDQ:
            continue
        made = graph.alone(op)
        if made is None:
            continue
        sub, inputs, scale = made
        row = {"operator": op.op_type, "output": op.output[0]}
        for rounding in ROUNDINGS:
            project = _project(sub, rounding, directory / f"op_{rounding}")
            differ, total, worst = 0, 0, 0.0
            for v in values:
                feeds = [v[i] for i in inputs]
                steps = _steps(sim.run(project, feeds, kind="host").outputs[0],
                               reference.run_onnxruntime(sub, feeds)[0], scale)
                differ += int((steps > 0.5).sum())
                total += steps.size
                worst = max(worst, float(steps.max()))
            row[rounding] = {"differ_percent": round(100.0 * differ / total, 3),
                             "max_steps": round(worst)}
        result["operators"].append(row)
        print(f"{op.op_type:18s} {op.output[0]:30s} "
              + "  ".join(f"{r}: {row[r]['differ_percent']:6.3f} % max {row[r]['max_steps']}"
                          for r in ROUNDINGS), flush=True)
    out_scale = float(graph.init[graph.producer[model.graph.output[0].name].input[1]])
    for rounding in ROUNDINGS:
        project = _project(model, rounding, directory / f"model_{rounding}")
        worst = [round(float(_steps(sim.run(project, [x], kind="host").outputs[0],
                                    reference.run_onnxruntime(model, [x])[0],
                                    out_scale).max())) for x in xs]
        instructions = sim.run(project, [xs[0]], timeout=1800).instructions_model
        result["end_to_end"][rounding] = {
            "max_steps": max(worst), "inputs_over_one_step": sum(w > 1 for w in worst),
            "histogram": {str(k): worst.count(k) for k in sorted(set(worst))},
            "qemu_instructions": instructions}
        print(f"end to end, {rounding} rounding: steps per input "
              f"{result['end_to_end'][rounding]['histogram']}, {instructions:,} instructions "
              "on QEMU", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a QDQ .onnx model (default: the MCUNet-shaped CNN)")
    parser.add_argument("--inputs", type=int, default=32, help="seeded N(0, 1) inputs")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qdq-layers-") as tmp:
        directory = Path(tmp)
        if args.model:
            model = onnx.load(args.model)
            shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        else:
            model, shape = qdq_models.mcunet_cnn()
            model = qdq_models.quantize_qdq(model, shape, directory)
        result = bench(model, shape, args.inputs, directory)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
