"""Tasks: raw files -> examples, per dataset. Importing this package registers every task."""
from . import nlg  # noqa: F401  (registers e2e, webnlg, dart)
from .base import (DataMissingError, Example, TASK_LOADERS, find_data_file, group_references,
                   load_examples)

__all__ = ["DataMissingError", "Example", "TASK_LOADERS", "find_data_file", "group_references",
           "load_examples"]
