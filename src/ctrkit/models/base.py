"""What every model is: ``(schema, config) -> nn.Module`` with ``forward(batch) -> ModelOutput``.

A model never reads files, never picks a device and never owns an optimizer: the trainer does
those. Its constructor only builds layers from the fitted schema (vocabulary sizes, field counts)
and its frozen config dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class ModelOutput:
    """logits: task name -> (B,) float32 logits (the loss is always on logits).

    aux_loss: an extra scalar the model wants added to the training loss (e.g. DIEN's auxiliary
    loss), already weighted; None when the model has none.
    """

    logits: Mapping[str, torch.Tensor]
    aux_loss: torch.Tensor | None = None
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)


class CTRModel(nn.Module):
    """Base class: stores schema and config, names the task(s) it predicts.

    Subclasses set ``config_class`` (a frozen dataclass with the paper's defaults) and implement
    ``forward``. Single-task models predict ``self.task``, the schema's only task.
    """

    config_class: ClassVar[type]
    multi_task: ClassVar[bool] = False
    #: Small parameter overrides the common test suite uses so every model stays quick to test.
    test_params: ClassVar[dict[str, Any]] = {}
    #: True for models whose traced (TorchScript / ONNX) form fixes the history length it was
    #: traced with (a loop over positions, a top-k sized by it): the export then traces and serves
    #: every sequence padded to its schema ``max_len``.
    export_full_length: ClassVar[bool] = False

    def __init__(self, schema: FeatureSchema, config: Any):
        super().__init__()
        if not schema.is_fitted:
            raise ValueError(f"{type(self).__name__} needs a fitted schema (vocab sizes set)")
        if not self.multi_task and len(schema.tasks) != 1:
            raise ValueError(
                f"{type(self).__name__} predicts one task but the schema has "
                f"{schema.task_names}; choose a multi-task model or keep one task"
            )
        self.schema = schema
        self.config = config
        self.task_names = schema.task_names
        self.task = self.task_names[0]

    def output(self, logit: torch.Tensor) -> ModelOutput:
        """Wrap a single-task (B,) or (B, 1) logit."""
        return ModelOutput({self.task: logit.reshape(-1)})

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError
