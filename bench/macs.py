"""Multiply-accumulates of a TFLite model, counted from its operators' shapes.

Counts CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (where the MACs of the MLPerf Tiny
models are); MACs per instruction is then comparable with published kernel libraries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def count_macs(path) -> int:
    import tflite  # pylint: disable=import-outside-toplevel

    buf = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    total = 0
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = names.get(builtin, "")
        shape = lambda t: graph.Tensors(t).ShapeAsNumpy()  # noqa: E731
        out = shape(op.Outputs(0))
        if kind == "CONV_2D":
            w = shape(op.Inputs(1))  # [O, KH, KW, I]
            total += int(np.prod(out)) * int(w[1] * w[2] * w[3])
        elif kind == "DEPTHWISE_CONV_2D":
            w = shape(op.Inputs(1))  # [1, KH, KW, O]
            total += int(np.prod(out)) * int(w[1] * w[2])
        elif kind == "FULLY_CONNECTED":
            w = shape(op.Inputs(1))  # [O, I]
            total += int(np.prod(out)) * int(w[1])
    return total
