"""Training: the trainer, optimizers, checkpoints, and whole runs.

``ctrkit.train(config)`` trains one run and returns a :class:`~ctrkit.train.run.RunResult`. This
package is itself callable so that the short form works while the modules stay importable as
``ctrkit.train.trainer`` etc.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, config: Any = None, **kwargs: Any) -> Any:
        from ctrkit.train.run import train

        return train(config, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
