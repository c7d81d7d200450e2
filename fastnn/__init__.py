"""fastnn: a Keras-shaped neural-network library for CPUs with hand-written C/OpenMP kernels
(`import fastnn as keras`)."""

__version__ = "0.1.0"

from fastnn import (
    _config,  # noqa: F401  (first: it sets OMP_WAIT_POLICY before the extension loads)
    activations,
    callbacks,
    datasets,
    errors,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    regularizers,
    utils,
)
from fastnn._config import (
    get_flush_denormals,
    get_isa,
    get_num_threads,
    set_flush_denormals,
    set_isa,
    set_num_threads,
)
from fastnn.layers import Input
from fastnn.models import Sequential

__all__ = [
    "Input",
    "Sequential",
    "__version__",
    "activations",
    "callbacks",
    "datasets",
    "errors",
    "get_flush_denormals",
    "get_isa",
    "get_num_threads",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "regularizers",
    "set_flush_denormals",
    "set_isa",
    "set_num_threads",
    "utils",
]
