"""Functional forms of fastnn's kernels. Lenient at the edge: they take any layout of a
float32 array (copying once only what the kernel cannot take) and refuse other dtypes."""

from fastnn._kernels import matmul

__all__ = ["matmul"]
