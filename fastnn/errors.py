"""Exception classes raised by fastnn for damaged or foreign files."""


class ModelFileError(ValueError):
    """A saved model or weights file is truncated, altered, foreign or unsupported."""


class DataFileError(ValueError):
    """A dataset file (e.g. MNIST-format IDX) is truncated, damaged or not of that format."""
