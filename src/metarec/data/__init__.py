"""Data layer: readers for each format, the one in-memory Dataset, generated data,
downloads + cache, and cold-start splits."""

from metarec.data.dataset import (
    Dataset,
    FeatureTable,
    FieldSpec,
    IdMap,
    Interactions,
    build_dataset,
)

__all__ = ["Dataset", "FeatureTable", "FieldSpec", "IdMap", "Interactions", "build_dataset"]
