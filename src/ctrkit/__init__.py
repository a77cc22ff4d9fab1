"""ctrkit: a fast, reproducible platform for click-through-rate prediction."""

__version__ = "0.1.0"

from ctrkit.batch import Batch, FieldLayout, SequenceBatch  # noqa: E402
from ctrkit.schema import FeatureSchema  # noqa: E402

# ``ctrkit.train`` is the training package; it is callable: ``ctrkit.train(config)`` runs
# :func:`ctrkit.train.run.train` (imported lazily below so ``import ctrkit`` stays light).
__all__ = ["Batch", "FeatureSchema", "FieldLayout", "RunConfig", "SequenceBatch", "__version__", "train"]


def __getattr__(name: str):
    if name == "train":
        import ctrkit.train as _train

        return _train
    if name == "RunConfig":
        from ctrkit.config import RunConfig

        return RunConfig
    raise AttributeError(f"module 'ctrkit' has no attribute '{name}'")
