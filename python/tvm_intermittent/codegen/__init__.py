"""C code generation: kernels from TIR, the memory plan, model sources and project files."""
