"""Several models answer each request together, within their deadlines"""

__version__ = "0.1.0"
