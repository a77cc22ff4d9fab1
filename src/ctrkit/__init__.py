"""ctrkit: a fast, reproducible platform for click-through-rate prediction."""

__version__ = "0.1.0"

from ctrkit.batch import Batch, FieldLayout, SequenceBatch  # noqa: E402
from ctrkit.schema import FeatureSchema  # noqa: E402

__all__ = ["Batch", "FeatureSchema", "FieldLayout", "SequenceBatch", "__version__"]
