"""fastnn: a Keras-shaped neural-network library for CPUs with hand-written C/OpenMP kernels."""

__version__ = "0.1.0"

from fastnn._config import get_isa, get_num_threads, set_isa, set_num_threads
from fastnn import ops

__all__ = ["__version__", "get_isa", "set_isa", "get_num_threads", "set_num_threads", "ops"]
