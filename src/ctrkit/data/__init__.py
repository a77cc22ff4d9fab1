"""The data half: readers, encoders fitted on train, the encoded store, the batch loader."""

from ctrkit.data.encoders import Encoders
from ctrkit.data.loader import BatchLoader
from ctrkit.data.readers import SourceFile, source_file
from ctrkit.data.store import DataSpec, Store, build_store

__all__ = ["BatchLoader", "DataSpec", "Encoders", "SourceFile", "Store", "build_store", "source_file"]
