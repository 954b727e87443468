"""WikiSQL logical-form accuracy as salesforce/WikiSQL's evaluate.py defines it, plus exact string match.
Owns the suite's SQL string format: gold query dict -> canonical SQL, and SQL -> logical form (or None)."""
from __future__ import annotations

from typing import Sequence

from ._io import MetricInputError, check_counts

AGG_OPS = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")
COND_OPS = ("=", ">", "<", "OP")


def wikisql_query_to_sql(query: dict, header: Sequence[str]) -> str:
    """Canonical SQL of a gold query {sel, agg, conds}:
    ``SELECT <agg>(<col>) FROM table WHERE <col> <op> <value> AND ...`` (no parentheses when the
    aggregation is empty), column names from the table header, values as ``str(value)``."""
    try:
        sel = header[query["sel"]]
        agg = AGG_OPS[query["agg"]]
        conds = [(header[c], COND_OPS[o], str(v)) for c, o, v in query["conds"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MetricInputError(f"bad WikiSQL query {query!r} for a {len(header)}-column header: {exc}") from None
    sql = f"SELECT {agg}({sel}) FROM table" if agg else f"SELECT {sel} FROM table"
    if conds:
        sql += " WHERE " + " AND ".join(f"{c} {o} {v}" for c, o, v in conds)
    return sql


def _column_index(header: Sequence[str]) -> list[tuple[str, int]]:
    """(name, index), longest name first so that "col1" never wins over "col10"; a repeated name
    maps to its first column."""
    first: dict = {}
    for i, name in enumerate(header):
        first.setdefault(name, i)
    return sorted(first.items(), key=lambda kv: -len(kv[0]))


def _parse_conds(text: str, pos: int, columns, memo: dict) -> list | None:
    """Conditions from text[pos:] to the end, or None. A value runs to the end or to an " AND "
    that starts another valid condition; the earliest such split is taken (so a value holding
    " AND <column> <op> " is read as two conditions, the natural reading of generated SQL).
    ``memo`` (position -> result) keeps a string with many " AND "s linear, not exponential."""
    if pos in memo:
        return memo[pos]
    memo[pos] = None
    for name, idx in columns:
        if not text.startswith(name + " ", pos):
            continue
        after_col = pos + len(name) + 1
        for op_idx, op in enumerate(COND_OPS):
            if text.startswith(op + " ", after_col):
                start = after_col + len(op) + 1
            elif text[after_col:] == op:  # empty last value (trailing space stripped)
                start = len(text)
            else:
                continue
            search = start
            while True:
                cut = text.find(" AND ", search)
                if cut < 0:
                    memo[pos] = [[idx, op_idx, text[start:]]]
                    return memo[pos]
                rest = _parse_conds(text, cut + 5, columns, memo)
                if rest is not None:
                    memo[pos] = [[idx, op_idx, text[start:cut]]] + rest
                    return memo[pos]
                search = cut + 1
    return None


def parse_wikisql_sql(sql: str, header: Sequence[str]) -> dict | None:
    """Logical form {sel, agg, conds} of a SQL string in the suite's format, or None when it
    cannot be read against this header (an unparseable generation is wrong, never an error)."""
    if not isinstance(sql, str):
        return None
    text = sql.strip()
    if not text.startswith("SELECT "):
        return None
    columns = _column_index(header)
    body = text[len("SELECT "):]
    candidates = []
    for name, idx in columns:
        for agg_idx, agg in enumerate(AGG_OPS):
            candidates.append((f"{agg}({name})" if agg else name, agg_idx, idx))
    candidates.sort(key=lambda c: -len(c[0]))
    for sel_text, agg_idx, idx in candidates:
        head = sel_text + " FROM table"
        if not body.startswith(head):
            continue
        tail = body[len(head):]
        if tail == "":
            return {"sel": idx, "agg": agg_idx, "conds": []}
        if tail.startswith(" WHERE "):
            offset = len("SELECT ") + len(head) + len(" WHERE ")
            conds = _parse_conds(text, offset, columns, {})
            if conds is not None:
                return {"sel": idx, "agg": agg_idx, "conds": conds}
    return None


def logical_form_equal(pred: dict | None, gold: dict, ordered: bool = False) -> bool:
    """WikiSQL's Query.__eq__: same sel and agg; conditions as a SET (a list if ``ordered``) of
    (column, op, str(value).lower())."""
    if pred is None:
        return False
    if pred["sel"] != gold["sel"] or pred["agg"] != gold["agg"]:
        return False
    norm_p = [(c, o, str(v).lower()) for c, o, v in pred["conds"]]
    norm_g = [(c, o, str(v).lower()) for c, o, v in gold["conds"]]
    return norm_p == norm_g if ordered else set(norm_p) == set(norm_g)


def score_wikisql(preds: Sequence[str], golds: Sequence[dict], headers: Sequence[Sequence[str]]) -> dict:
    """Logical-form accuracy (``lf_accuracy``, WikiSQL evaluate.py's, 0-1: the paper's WikiSQL
    number) and exact string match with the canonical gold SQL (``exact_match``, after stripping
    surrounding whitespace) of generated SQL strings. ``golds`` are the dataset's ``sql`` dicts,
    ``headers`` each example's table header. ``unparseable`` counts generations not in the format.
    Execution accuracy is not computed (it needs the tables' rows)."""
    check_counts(len(preds), len(golds), "generations", "gold queries")
    check_counts(len(preds), len(headers), "generations", "table headers")
    for i, pred in enumerate(preds):
        if not isinstance(pred, str):
            raise MetricInputError(f"generation {i} is {type(pred).__name__} {pred!r}, "
                                   "expected a SQL string")
    lf = em = bad = 0
    for pred, gold, header in zip(preds, golds, headers):
        form = parse_wikisql_sql(pred, header)
        bad += form is None
        lf += logical_form_equal(form, gold)
        em += isinstance(pred, str) and pred.strip() == wikisql_query_to_sql(gold, header)
    n = len(preds)
    return {"lf_accuracy": lf / n, "exact_match": em / n, "n": n, "unparseable": bad}


def synthetic_header(query: dict) -> list[str]:
    """col0..colK for a query whose table is unknown, K the largest column index it uses."""
    used = [query["sel"]] + [c for c, _, _ in query["conds"]]
    return [f"col{i}" for i in range(max(used) + 1)]
