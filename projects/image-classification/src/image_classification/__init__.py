"""Image classification API with dynamic micro-batching"""

__version__ = "0.1.0"
