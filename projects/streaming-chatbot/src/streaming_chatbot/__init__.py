"""Streaming chat gateway in front of an LLM engine"""

__version__ = "0.1.0"
