"""axdnn: approximate computing for deep neural networks."""

__version__ = "0.1.0"
