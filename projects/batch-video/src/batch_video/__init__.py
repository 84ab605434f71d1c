"""Analyses videos frame by frame in resumable jobs, with results as Parquet"""

__version__ = "0.1.0"
