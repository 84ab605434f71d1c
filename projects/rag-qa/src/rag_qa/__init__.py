"""Question answering over your documents, with cited sources"""

__version__ = "0.1.0"
