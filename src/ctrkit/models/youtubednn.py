"""YoutubeDNN: the name BARS's leaderboard gives its DNN baseline; the same model as ``DNN``.

Reference: Covington et al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016, as
BARS runs it (``ranking/ctr/DNN/DNN_frappe_x1``: FuxiCTR ``DNN``). This module only registers
:class:`ctrkit.models.dnn.DNN` under the leaderboard's name, so configs written against the
leaderboard resolve; structure, defaults and departures are DNN's.
"""

from __future__ import annotations

from ctrkit.models.dnn import DNN, DNNConfig
from ctrkit.models.registry import register


@register("YoutubeDNN", reference="Covington et al., YouTube DNN, RecSys 2016 (BARS leaderboard name of DNN)")
class YoutubeDNN(DNN):
    """Field embeddings concatenated into an MLP; see :class:`ctrkit.models.dnn.DNN`."""

    config_class = DNNConfig
