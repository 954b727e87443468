"""Tasks: raw files -> examples, per dataset. Importing this package registers every task."""
from . import nlg  # noqa: F401  (registers e2e, webnlg, dart)
from . import glue_gen, samsum, wikisql  # noqa: F401  (the GPT-3 tasks: mnli/rte/sst2_gen, samsum, wikisql)
from .base import (DataFormatError, DataMissingError, Example, TASK_LOADERS, find_data_file, group_references,
                   load_examples)

__all__ = ["DataFormatError", "DataMissingError", "Example", "TASK_LOADERS", "find_data_file", "group_references",
           "load_examples"]
