"""Print a lowered TIR PrimFunc as one plain C99 function.

TVM's own ``c`` target emits the packed tvm-ffi calling convention, and in TVM 0.27 PrimFunc
parameters are buffer-typed variables that its C code generator cannot print without
``MakePackedAPI``. So we print the lowered, flattened TIR ourselves: every buffer parameter
becomes a ``restrict`` pointer, ``DeclBuffer`` views become the pointer they view, small
scratch buffers become stack arrays and large ones ``static`` arrays (never a
variable-length or large stack array), and each intrinsic maps to a libm call or an inline
helper from ``intm_kernel_ops.h``.

The input is what :func:`tvm_intermittent.transform.lower_prim_func` produces: no blocks,
flat buffers, 32-bit loop indices.
"""

from __future__ import annotations

import keyword
import math
import re

import tvm
from tvm import tirx

from ..errors import ModelError
from ..transform.conv_blocks import MICRO_KERNEL_ATTR

#: Scratch buffers up to this many bytes live on the stack; larger ones are ``static``.
STACK_SCRATCH_LIMIT = 256

C_TYPES = {
    "float32": "float",
    "float64": "double",
    "int8": "int8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "uint8": "uint8_t",
    "uint16": "uint16_t",
    "uint32": "uint32_t",
    "uint64": "uint64_t",
    "bool": "uint8_t",
}

_C_KEYWORDS = set(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while".split()
) | set(keyword.kwlist)

_BINARY = {
    "Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Mod": "%",
    "EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">=",
    "And": "&&", "Or": "||", "LShift": "<<", "RShift": ">>",
    "BitwiseAnd": "&", "BitwiseOr": "|", "BitwiseXor": "^",
}

#: Float intrinsics and their single-precision libm names (double adds no suffix).
_LIBM = {
    "exp": "exp", "exp2": "exp2", "exp10": "exp10", "log": "log", "log2": "log2",
    "log10": "log10", "log1p": "log1p", "sqrt": "sqrt", "tanh": "tanh", "sin": "sin",
    "cos": "cos", "tan": "tan", "erf": "erf", "floor": "floor", "ceil": "ceil",
    "trunc": "trunc", "nearbyint": "nearbyint", "round": "nearbyint", "fabs": "fabs",
    "pow": "pow", "fmod": "fmod", "atan": "atan", "atan2": "atan2", "asin": "asin",
    "acos": "acos", "sinh": "sinh", "cosh": "cosh", "hypot": "hypot",
}


def statements(node):
    """Every statement under ``node``, in program order (a pre-order walk)."""
    yield node
    if type(node).__name__ == "SeqStmt":
        for child in node.seq:
            yield from statements(child)
        return
    for field in ("body", "then_case", "else_case"):
        child = getattr(node, field, None)
        if child is not None:
            yield from statements(child)


def written_parameters(func: tirx.PrimFunc) -> set[str]:
    """Names of the parameters ``func`` stores to, directly or through a DeclBuffer view
    (the others become ``const`` pointers, and only these need tiles of their own)."""
    root = {var: var.name for var in func.params}
    written = set()
    for node in statements(func.body):
        kind = type(node).__name__
        if kind == "DeclBuffer":
            base = _viewed_var(node)
            if base is not None and base in root:
                root[node.buffer] = root[base]
        elif kind == "BufferStore" and node.buffer in root:
            written.add(root[node.buffer])
    return written


def _scratch_size(buf, where: str) -> tuple[int, int]:
    """Elements and bytes of a scratch (AllocBuffer) buffer; its shape must be static."""
    count = 1
    for extent in buf.ty.shape:
        if not isinstance(extent, tirx.IntImm):
            raise ModelError(f"{where}: scratch buffer {buf.name} has dynamic shape")
        count *= int(extent)
    return count, count * tvm.DataType(str(buf.ty.dtype)).bits // 8


def stack_scratch_bytes(func: tirx.PrimFunc, where: str = "kernel") -> int:
    """Bytes of the scratch arrays the printed function keeps on the stack."""
    sizes = (_scratch_size(node.buffer, where)[1] for node in statements(func.body)
             if type(node).__name__ == "AllocBuffer")
    return sum(n for n in sizes if n <= STACK_SCRATCH_LIMIT)


def c_type(dtype) -> str:
    """The C type of a scalar TVM dtype; an error names dtypes we cannot emit."""
    name = str(dtype)
    if name not in C_TYPES:
        raise ModelError(f"the C code generator does not support dtype {name!r}")
    return C_TYPES[name]


def _type_suffix(dtype) -> str:
    """Suffix of the inline helpers in ``intm_kernel_ops.h`` for ``dtype`` (``f32``, ``i8``)."""
    name = str(dtype)
    if name == "bool":
        return "u8"
    return {"float": "f", "int": "i", "uint": "u"}[re.match(r"[a-z]+", name).group()] + (
        re.search(r"\d+", name).group()
    )


class _Names:
    """Unique, valid C identifiers for TIR variables and buffers (keyed by object)."""

    def __init__(self, reserved=()):
        self._by_object: dict = {}
        self._used: set[str] = set(reserved)

    def fresh(self, hint: str) -> str:
        base = re.sub(r"\W", "_", hint) or "v"
        if base[0].isdigit() or base in _C_KEYWORDS or base.startswith("intm_"):
            base = "v_" + base
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def bind(self, obj, hint: str) -> str:
        self._by_object[obj] = self.fresh(hint)
        return self._by_object[obj]

    def get(self, obj):
        return self._by_object.get(obj)


class CFunctionPrinter:
    """Prints one lowered PrimFunc as a C function named ``c_name``.

    Parameters
    ----------
    func : tvm.tirx.PrimFunc
        Lowered PrimFunc whose parameters are all buffers.
    c_name : str
        Name of the emitted C function.
    tile_loops : list of tvm.tirx.For, optional
        The leading perfectly nested loops to fuse into one tile index. The function then
        takes ``int32_t intm_begin, int32_t intm_end`` and runs only those tiles.
    """

    def __init__(self, func: tirx.PrimFunc, c_name: str, tile_loops=(), chunks: int = 1,
                 chunk_size: int = 0):
        self.func = func
        self.c_name = c_name
        self.tile_loops = list(tile_loops)
        # Split reductions (see tiling.py): tiles are (element, chunk) pairs.
        self.chunks = chunks
        self.chunk_size = chunk_size
        self._loop_bounds: dict = {}
        self.names = _Names()
        # Buffer variable (parameter, DeclBuffer, AllocBuffer) -> C pointer expression.
        self._pointers: dict = {}
        # Names of the parameters the body stores to, directly or through a view.
        self._written: set[str] = set()
        self._lines: list[str] = []
        self._statics: list[str] = []
        self.static_scratch_bytes = 0
        self.stack_scratch_bytes = 0

    # ---- entry point ---------------------------------------------------------------

    def print_function(self) -> str:
        """The C definition of the function (``static`` scratch arrays may precede it)."""
        params = []
        for var in self.func.params:
            name = self.names.bind(var, var.name)
            self._pointers[var] = name
            params.append((var, name))
        self._written = written_parameters(self.func)
        self._stmt(self.func.body, 1)
        args = []
        for var, name in params:
            const = "" if var.name in self._written else "const "
            args.append(f"{const}{c_type(var.ty.dtype)}* restrict {name}")
        if self.tile_loops:
            args += ["int32_t intm_begin", "int32_t intm_end"]
        header = f"void {self.c_name}({', '.join(args)})"
        body = "\n".join(self._lines)
        return "\n".join(self._statics + [header + " {", body, "}"]) + "\n"

    # ---- statements ------------------------------------------------------------------

    def _emit(self, depth: int, text: str):
        self._lines.append("  " * depth + text)

    def _stmt(self, node, depth: int):
        kind = type(node).__name__
        handler = getattr(self, f"_stmt_{kind}", None)
        if handler is None:
            raise ModelError(f"{self.c_name}: cannot print TIR statement {kind} as C")
        handler(node, depth)

    def _stmt_SeqStmt(self, node, depth):
        for s in node.seq:
            self._stmt(s, depth)

    def _stmt_DeclBuffer(self, node, depth):
        base = _viewed_var(node)
        if base is None or base not in self._pointers:
            raise ModelError(f"{self.c_name}: buffer {node.buffer.name} views unknown storage")
        ptr = self._pointers[base]
        offset = getattr(node.buffer.ty, "elem_offset", None)
        if offset is not None and not _is_zero(offset):
            ptr = f"({ptr} + {self._expr(offset)})"
        self._pointers[node.buffer] = ptr

    def _stmt_AllocBuffer(self, node, depth):
        buf = node.buffer
        count, nbytes = _scratch_size(buf, self.c_name)
        ctype = c_type(buf.ty.dtype)
        name = self.names.fresh(buf.name)
        if nbytes <= STACK_SCRATCH_LIMIT:
            self._emit(depth, f"{ctype} {name}[{count}];")
            self.stack_scratch_bytes += nbytes
        else:
            # Large scratch goes to static memory: MCU stacks are small and the kernels of
            # one model run one at a time, never re-entrantly.
            name = f"{self.c_name}_{name}"
            self._statics.append(f"static {ctype} {name}[{count}];")
            self.static_scratch_bytes += nbytes
        self._pointers[buf] = name

    def _stmt_For(self, node, depth):
        if self.tile_loops and node.same_as(self.tile_loops[0]):
            self._tile_loop(depth)
            return
        var = self.names.bind(node.loop_var, node.loop_var.name)
        ctype = c_type(_var_dtype(node.loop_var))
        if node in self._loop_bounds:
            lo, hi_text = self._loop_bounds[node]
            self._emit(depth, f"for ({ctype} {var} = {lo}; {var} < {hi_text}; ++{var}) {{")
            self._stmt(node.body, depth + 1)
            self._emit(depth, "}")
            return
        lo = self._expr(node.min)
        hi = node.min + node.extent if not _is_zero(node.min) else node.extent
        step = node.step
        inc = f"++{var}" if step is None or _is_one(step) else f"{var} += {self._expr(step)}"
        self._emit(depth, f"for ({ctype} {var} = {lo}; {var} < {self._expr(hi)}; {inc}) {{")
        self._stmt(node.body, depth + 1)
        self._emit(depth, "}")

    def _tile_loop(self, depth):
        """The fused tile loop: one index over the tile loops, each variable recovered by
        division, so a tile range [intm_begin, intm_end) can resume anywhere."""
        loops = self.tile_loops
        extents = [int(loop.extent) for loop in loops]
        self._emit(depth, "for (int32_t intm_tile = intm_begin; intm_tile < intm_end; "
                          "++intm_tile) {")
        if self.chunks > 1:
            self._emit(depth + 1, f"const int32_t intm_element = intm_tile / {self.chunks};")
            self._emit(depth + 1, f"const int32_t intm_chunk = intm_tile % {self.chunks};")
        element = "intm_element" if self.chunks > 1 else "intm_tile"
        stride = 1
        for loop, extent in reversed(list(zip(loops, extents))):
            var = self.names.bind(loop.loop_var, loop.loop_var.name)
            index = element if stride == 1 else f"({element} / {stride})"
            if stride * extent != _product(extents):
                index = f"({index} % {extent})"
            offset = "" if _is_zero(loop.min) else f" + {self._expr(loop.min)}"
            self._emit(depth + 1, f"const int32_t {var} = {index}{offset};")
            stride *= extent
        if self.chunks > 1:
            self._split_reduction_body(loops[-1].body, depth + 1)
        else:
            self._stmt(loops[-1].body, depth + 1)
        self._emit(depth, "}")

    def _split_reduction_body(self, body, depth):
        """One chunk of one element's reduction; the running sum moves through two NVM slots
        (chunk c reads slot c % 2, writes slot (c + 1) % 2), so a chunk can run again."""
        init, loop, epilogue = body.seq
        acc = self._pointers[init.buffer]
        ctype = c_type(init.buffer.ty.dtype)
        partial = f"{self.c_name}_partial"
        self._statics.append(f"INTM_NVM static {ctype} {partial}[2];")
        self._emit(depth, "if (intm_chunk == 0) {")
        self._stmt(init, depth + 1)
        self._emit(depth, "} else {")
        self._emit(depth + 1, f"{acc}[0] = {partial}[intm_chunk & 1];")
        self._emit(depth, "}")
        size, extent = self.chunk_size, int(loop.extent)
        self._loop_bounds[loop] = (f"intm_chunk * {size}",
                                   f"intm_min_i32(intm_chunk * {size} + {size}, {extent})")
        self._stmt(loop, depth)
        self._emit(depth, f"if (intm_chunk == {self.chunks - 1}) {{")
        self._stmt(epilogue, depth + 1)
        self._emit(depth, "} else {")
        self._emit(depth + 1, f"{partial}[(intm_chunk + 1) & 1] = {acc}[0];")
        self._emit(depth, "}")

    def _stmt_BufferStore(self, node, depth):
        self._emit(depth, f"{self._access(node.buffer, node.indices)} = {self._expr(node.value)};")

    def _stmt_Bind(self, node, depth):
        name = self.names.bind(node.var, node.var.name)
        self._emit(depth, f"const {c_type(_var_dtype(node.var))} {name} = {self._expr(node.value)};")

    def _stmt_IfThenElse(self, node, depth):
        self._emit(depth, f"if ({_strip(self._expr(node.condition))}) {{")
        self._stmt(node.then_case, depth + 1)
        if node.else_case is not None:
            self._emit(depth, "} else {")
            self._stmt(node.else_case, depth + 1)
        self._emit(depth, "}")

    def _stmt_While(self, node, depth):
        self._emit(depth, f"while ({_strip(self._expr(node.condition))}) {{")
        self._stmt(node.body, depth + 1)
        self._emit(depth, "}")

    def _stmt_AttrStmt(self, node, depth):
        if node.attr_key == MICRO_KERNEL_ATTR:
            # A run of an assembly micro-kernel: its call, not the TIR of the same sums.
            self._emit(depth, f"{_strip(self._expr(node.value))};")
            return
        self._stmt(node.body, depth)

    def _stmt_AssertStmt(self, node, depth):
        # Shapes are static and checked at compile time; asserts would pull in a runtime.
        return

    def _stmt_Evaluate(self, node, depth):
        if isinstance(node.value, (tirx.IntImm,)):
            return
        self._emit(depth, f"{_strip(self._expr(node.value))};")

    # ---- expressions -----------------------------------------------------------------

    def _access(self, buffer, indices) -> str:
        base = self._pointers.get(buffer)
        if base is None:
            raise ModelError(f"{self.c_name}: access to undeclared buffer {buffer.name}")
        if len(indices) != 1:
            raise ModelError(f"{self.c_name}: buffer {buffer.name} is not flattened")
        return f"{base}[{_strip(self._expr(indices[0]))}]"

    def _expr(self, node) -> str:
        kind = type(node).__name__
        if kind in _BINARY:
            return f"({self._expr(node.a)} {_BINARY[kind]} {self._expr(node.b)})"
        handler = getattr(self, f"_expr_{kind}", None)
        if handler is None:
            raise ModelError(f"{self.c_name}: cannot print TIR expression {kind} as C")
        return handler(node)

    def _expr_IntImm(self, node):
        value, dtype = int(node.value), _dtype(node)
        if dtype == "bool":
            return "1" if value else "0"
        if dtype == "int64":
            return f"INT64_C({value})"
        if dtype.startswith("uint"):
            return f"{value}u"
        if dtype == "int32" and value == -(2**31):
            return "INT32_MIN"
        return str(value) if value >= 0 else f"({value})"

    def _expr_FloatImm(self, node):
        value, dtype = float(node.value), _dtype(node)
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INFINITY" if value > 0 else "(-INFINITY)"
        text = float_literal(value, dtype)
        return text if value >= 0 else f"({text})"

    def _expr_Var(self, node):
        name = self.names.get(node)
        if name is None:
            raise ModelError(f"{self.c_name}: variable {node.name} used before definition")
        return name

    def _expr_BufferLoad(self, node):
        return self._access(node.source, node.indices)

    _expr_TensorLoad = _expr_BufferLoad

    def _expr_Cast(self, node):
        return f"(({c_type(_dtype(node))}){self._expr(node.value)})"

    def _expr_Not(self, node):
        return f"(!{self._expr(node.a)})"

    def _expr_BitwiseNot(self, node):
        return f"(~{self._expr(node.a)})"

    def _expr_Select(self, node):
        return (f"({self._expr(node.condition)} ? {self._expr(node.true_value)} : "
                f"{self._expr(node.false_value)})")

    def _expr_Min(self, node):
        return f"intm_min_{_type_suffix(_dtype(node))}({self._expr(node.a)}, {self._expr(node.b)})"

    def _expr_Max(self, node):
        return f"intm_max_{_type_suffix(_dtype(node))}({self._expr(node.a)}, {self._expr(node.b)})"

    def _expr_FloorDiv(self, node):
        if _dtype(node).startswith("float"):
            return f"{_libm('floor', _dtype(node))}({self._expr(node.a)} / {self._expr(node.b)})"
        return (f"intm_floordiv_{_type_suffix(_dtype(node))}({self._expr(node.a)}, "
                f"{self._expr(node.b)})")

    def _expr_FloorMod(self, node):
        if _dtype(node).startswith("float"):
            a, b = self._expr(node.a), self._expr(node.b)
            return f"({a} - {_libm('floor', _dtype(node))}({a} / {b}) * {b})"
        return (f"intm_floormod_{_type_suffix(_dtype(node))}({self._expr(node.a)}, "
                f"{self._expr(node.b)})")

    def _expr_Call(self, node):
        op = str(node.op.name).removeprefix("tirx.").removeprefix("prim.")
        if op in ("call_pure_extern", "call_extern") and \
                str(node.args[0].value).startswith("intm_"):
            # Our own helpers from intm_kernel_ops.h (the DSP multiply-accumulates).
            rest = ", ".join(self._expr(a) for a in node.args[1:])
            return f"{node.args[0].value}({rest})"
        if op == "address_of":
            return f"(&{self._access(node.args[0].source, node.args[0].indices)})"
        args = [self._expr(a) for a in node.args]
        dtype = _dtype(node)
        if op == "if_then_else":
            return f"({args[0]} ? {args[1]} : {args[2]})"
        if op == "likely":
            return args[0]
        if op in ("shift_left", "shift_right"):
            return f"({args[0]} {'<<' if op == 'shift_left' else '>>'} {args[1]})"
        if op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
            sym = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}[op]
            return f"({args[0]} {sym} {args[1]})"
        if op == "bitwise_not":
            return f"(~{args[0]})"
        if op == "isnan":
            return f"isnan({args[0]})"
        if op == "sigmoid":
            return f"intm_sigmoid_{_type_suffix(dtype)}({args[0]})"
        if op == "rsqrt":
            return f"(1 / {_libm('sqrt', dtype)}({args[0]}))"
        if op in ("abs", "fabs"):
            if str(dtype).startswith("float"):
                return f"{_libm('fabs', dtype)}({args[0]})"
            return f"intm_abs_{_type_suffix(dtype)}({args[0]})"
        if op in ("pow", "power"):
            return f"{_libm('pow', dtype)}({args[0]}, {args[1]})"
        if op in _LIBM and str(dtype).startswith("float"):
            return f"{_libm(_LIBM[op], dtype)}({', '.join(args)})"
        legalize = _legalization(op)
        if legalize is not None:
            # TVM's fixed-point intrinsics (q_multiply_shift, its per-axis form) have no C
            # function; TVM's own legalization spells them in 64-bit integer arithmetic,
            # which prints like any expression (and keeps TVM's exact rounding).
            return self._expr(legalize(node))
        raise ModelError(f"{self.c_name}: no C translation for the TIR intrinsic {op!r}")


def _legalization(op: str):
    """TVM's ``default.FLegalize`` rule of the TIR intrinsic ``op``, or None."""
    try:
        return tvm.ir.Op.get("tirx." + op).get_attr("default.FLegalize")
    except (tvm.TVMError, AttributeError, ValueError):
        return None


def float_literal(value: float, dtype="float32") -> str:
    """An exact C literal for a finite float: hexadecimal, so no decimal rounding."""
    suffix = "f" if str(dtype) == "float32" else ""
    if value == 0:
        return ("-0.0" if math.copysign(1, value) < 0 else "0.0") + suffix
    return value.hex() + suffix


def _viewed_var(decl):
    """The buffer variable whose storage a ``DeclBuffer`` views, or None."""
    data = decl.data
    if type(data).__name__ == "Call" and str(data.op.name) == "tirx.buffer_data":
        return data.args[0]
    return None


def _dtype(expr) -> str:
    """dtype of a TIR expression (0.27 keeps it in ``expr.ty``)."""
    return str(expr.ty.dtype)


def _var_dtype(var) -> str:
    """dtype of a scalar TIR variable (``Var.dtype`` only exists for buffer variables)."""
    return str(var.ty.dtype)


def _libm(name: str, dtype) -> str:
    return name + ("f" if str(dtype) == "float32" else "")


def _product(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def _is_zero(expr) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == 0


def _is_one(expr) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == 1


def _strip(text: str) -> str:
    """Drop one pair of redundant outer parentheses."""
    if text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        return text[1:-1]
    return text
