"""Models, as `keras.models`: Sequential and load_model."""

from fastnn.models.sequential import Sequential
from fastnn.saving import load_model

__all__ = ["Sequential", "load_model"]
