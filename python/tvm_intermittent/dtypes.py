"""Element types a firmware tensor can have, and their ``intm_dtype_t`` names.

One table, read by the code generator (tensor descriptors in ``model.c``) and by the model
checks that run before TVM is imported (so it imports nothing heavy).
"""

#: numpy dtype name -> ``intm_dtype_t`` enumerator of ``runtime/intm_runtime.h``.
DTYPE_ENUM = {
    "float32": "INTM_FLOAT32",
    "int8": "INTM_INT8",
    "uint8": "INTM_UINT8",
    "int16": "INTM_INT16",
    "int32": "INTM_INT32",
    "int64": "INTM_INT64",
    "bool": "INTM_BOOL",
}
