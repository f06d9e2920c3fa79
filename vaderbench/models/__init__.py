"""Base-model adapters, registered by the names experiment files use."""

from vaderbench.models.base import Condition, VideoModel, cat_conditions, index_condition

__all__ = ["Condition", "VideoModel", "cat_conditions", "index_condition"]
