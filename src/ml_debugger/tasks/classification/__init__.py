"""Classification: one trace row per sample (label, scores, loss, features)."""

from ml_debugger.tasks import Task
from ml_debugger.tasks.classification.batch import ClassificationBatch, make_classification_batch
from ml_debugger.tasks.classification.schema import SCHEMA

TASK = Task(
    name="classification",
    description="one row per sample: label, logits or probabilities, loss, features",
    schema=SCHEMA,
    evaluation_module="ml_debugger.tasks.classification.evaluation",
)

__all__ = ["TASK", "ClassificationBatch", "make_classification_batch"]
