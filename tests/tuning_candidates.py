"""Tuning candidates of small int8 models, built into artifacts for the measurement tests.

One int8 convolution (TFLite, built by ``tflite_models``) compiled for a board under a power
environment, its tuning task, the valid knobs of its design space and the artifacts the
tuner's builder makes of them (``tuning.local.CandidateBuilder``).
"""

from __future__ import annotations

from pathlib import Path

import tvm

import tflite_models


def conv_model(directory, *, hw=(16, 16), channels=16, seed=0):
    """A ``.tflite`` int8 3x3 convolution of ``hw`` x ``channels`` (SAME padding) in
    ``directory`` and its input: about 1.2 million instructions on the Cortex-M4, one power
    failure on qemu-an386's own capacitor."""
    data, inputs = tflite_models.conv2d(hw=hw, cin=channels, cout=channels, seed=seed)
    path = Path(directory) / f"conv_{hw[0]}x{hw[1]}x{channels}.tflite"
    path.write_bytes(data)
    return str(path), inputs


def prepare(model, board: str, power_env: str):
    """``(ModelTasks, Board, TuningEnvironment)`` of ``model`` tuned on ``board``."""
    # pylint: disable=import-outside-toplevel
    from tvm_intermittent import builder
    from tvm_intermittent.board import load_board
    from tvm_intermittent.tuning import ModelTasks, environment

    the_board, env = load_board(board), environment(power_env)
    prepared = builder.prepare(model, tvm.target.Target("intermittent/" + the_board.name),
                               board=the_board, **env.build_options())
    return ModelTasks.of(prepared), the_board, env


def valid_knobs(model_tasks, task, board, env) -> list:
    """Every candidate of ``task``'s design space that passes the hard constraints, its
    operands unstaged (``Knobs.stage``: the set these tests were measured on)."""
    # pylint: disable=import-outside-toplevel
    from tvm_intermittent.tuning.constraints import check_candidate
    from tvm_intermittent.tuning.knobs import CandidateError
    from tvm_intermittent.tuning.space import candidates

    out = []
    for knobs in candidates(task):
        if knobs.stage:
            continue
        try:
            check_candidate(task, knobs, board, env,
                            static_scratch=model_tasks.static_scratch)
        except CandidateError:
            continue
        out.append(knobs)
    return out


def build_artifacts(model_tasks, task, board, env, inputs, knobs_list, root) -> list[str]:
    """The artifact directories of ``knobs_list`` (candidates of ``task``) under ``root``."""
    # pylint: disable=import-outside-toplevel
    from tvm_intermittent.tuning.local import CandidateBuilder
    from tvm_intermittent.tuning.space import schedule_for

    builder = CandidateBuilder(model_tasks, board, env, inputs, root)
    return [builder.build_one(schedule_for(task, knobs).mod) for knobs in knobs_list]
