"""Scorers for every task of the LoRA reproduction, each equal to the official scorer's value on the same input.
Library entry points below; the command line is `python -m experiments.metrics --help`. No torch, no training code."""
from ._io import MetricInputError
from .e2e import score_e2e
from .glue import score_glue
from .java import close_java
from .mnli import normalise_label, score_mnli_generation
from .samsum import score_samsum
from .webnlg import SEEN_CATEGORIES, is_seen_category, post_process, score_dart, score_webnlg, score_webnlg_splits
from .wikisql import logical_form_equal, parse_wikisql_sql, score_wikisql, wikisql_query_to_sql

__all__ = [
    "MetricInputError", "score_e2e", "score_webnlg", "score_dart", "score_webnlg_splits", "score_glue",
    "score_samsum", "score_wikisql", "score_mnli_generation", "post_process", "SEEN_CATEGORIES",
    "is_seen_category", "parse_wikisql_sql", "wikisql_query_to_sql", "logical_form_equal",
    "normalise_label", "close_java",
]
