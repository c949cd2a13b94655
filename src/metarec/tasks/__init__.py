"""Per-user tasks: a support set (what we know) and a query set (what we predict)."""

from metarec.tasks.batch import TaskBatch, TaskBatcher
from metarec.tasks.taskset import TaskSet

__all__ = ["TaskBatch", "TaskBatcher", "TaskSet"]
