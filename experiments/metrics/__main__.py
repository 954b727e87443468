"""Command line for every scorer: `python -m experiments.metrics TASK ...` prints one JSON object as its last stdout line.
Owns the file layouts of each task and turns MetricInputError into an argparse-style error (exit 2)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ._io import MetricInputError, check_counts, read_grouped_refs, read_lines, read_text

EPILOG = "Bad input (counts that differ, empty or non-UTF-8 files, no Java) exits with status 2 and a message."


def _webnlg_lines(path: str) -> list[str]:
    """Lines as eval.py reads them (split on '\\n'); the newline ending the last line adds none here
    (mode=faithful adds the official script's extra empty segment itself)."""
    text = read_text(path)
    if not text.strip():
        raise MetricInputError(f"{path}: file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _webnlg_refs(args) -> list[list[str]]:
    if args.refs:
        return read_grouped_refs(args.refs)
    streams, names = [], []
    k = 0
    while Path(f"{args.refs_prefix}{k}").exists():
        names.append(f"{args.refs_prefix}{k}")
        streams.append(_webnlg_lines(names[-1]))
        k += 1
    if not streams:
        raise MetricInputError(f"no reference files {args.refs_prefix}0, {args.refs_prefix}1, ... found")
    for name, stream in zip(names[1:], streams[1:]):
        if len(stream) != len(streams[0]):
            raise MetricInputError(
                f"{len(streams[0])} lines in {names[0]} but {len(stream)} lines in {name}; reference files must align"
            )
    return [list(group) for group in zip(*streams)]


def _numbers(path: str, kind: str) -> list:
    values = []
    for no, line in enumerate(read_lines(path), start=1):
        if not line:
            raise MetricInputError(f"{path}: line {no} is empty; expected one {kind} per line")
        try:
            values.append(int(line))
        except ValueError:
            try:
                values.append(float(line))
            except ValueError:
                values.append(line)
    return values


def _flags(path: str) -> list[bool]:
    out = []
    for no, line in enumerate(read_lines(path), start=1):
        word = line.strip().lower()
        if word in ("1", "true", "seen", "yes"):
            out.append(True)
        elif word in ("0", "false", "unseen", "no"):
            out.append(False)
        else:
            raise MetricInputError(f"{path}: line {no}: {line!r} is not a seen flag (1/0, true/false, seen/unseen)")
    return out


def _jsonl(path: str) -> list[dict]:
    rows = []
    for no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise MetricInputError(f"{path}: line {no} is not JSON ({exc.msg})") from None
    if not rows:
        raise MetricInputError(f"{path}: file is empty")
    return rows


def _clean_json(value):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


def run_e2e(args) -> dict:
    from .e2e import score_e2e
    from .java import shared_meteor

    refs = read_grouped_refs(args.refs)
    hyps = read_lines(args.hyp)
    check_counts(len(hyps), len(refs), args.hyp, args.refs)
    shared_meteor()  # start METEOR's JVM before the Python-side imports and work
    return score_e2e(hyps, refs)


def run_webnlg(args) -> dict:
    from .webnlg import score_webnlg, score_webnlg_splits

    refs = _webnlg_refs(args)
    hyps = _webnlg_lines(args.hyp)
    check_counts(len(hyps), len(refs), args.hyp, args.refs or f"{args.refs_prefix}0..")
    kwargs = {"mode": args.mode, "num_refs": args.num_refs, "metrics": args.metrics.split(",")}
    if getattr(args, "seen", None):
        seen = _flags(args.seen)
        check_counts(len(hyps), len(seen), args.hyp, args.seen)
        return score_webnlg_splits(hyps, refs, seen, **kwargs)
    return score_webnlg(hyps, refs, **kwargs)


def run_glue(args) -> dict:
    from .glue import score_glue

    preds, labels = _numbers(args.preds, "prediction"), _numbers(args.labels, "label")
    check_counts(len(preds), len(labels), args.preds, args.labels)
    return score_glue(args.task, preds, labels)


def run_samsum(args) -> dict:
    from .samsum import score_samsum

    hyps, refs = read_lines(args.hyp, allow_empty=True), read_lines(args.refs)
    if not any(hyps):
        raise MetricInputError(f"{args.hyp}: file is empty")
    check_counts(len(hyps), len(refs), args.hyp, args.refs)
    return score_samsum(hyps, refs, use_stemmer=not args.no_stemmer)


def run_wikisql(args) -> dict:
    from .wikisql import score_wikisql, synthetic_header

    preds = [line for line in read_text(args.pred).split("\n")]
    if preds and preds[-1] == "":
        preds.pop()
    if not any(p.strip() for p in preds):
        raise MetricInputError(f"{args.pred}: file is empty")
    gold_rows = _jsonl(args.gold)
    check_counts(len(preds), len(gold_rows), args.pred, args.gold)
    if args.tables:
        tables = {row["id"]: row["header"] for row in _jsonl(args.tables)}
        missing = [r["table_id"] for r in gold_rows if r["table_id"] not in tables]
        if missing:
            raise MetricInputError(f"{args.tables}: no table {missing[0]!r} ({len(missing)} questions lack their table)")
        headers = [tables[r["table_id"]] for r in gold_rows]
    else:
        headers = [synthetic_header(r["sql"]) for r in gold_rows]
    return score_wikisql(preds, [r["sql"] for r in gold_rows], headers)


def run_mnli(args) -> dict:
    from .mnli import LABEL_WORDS, score_mnli_generation

    preds = read_lines(args.preds, allow_empty=True)
    labels = _numbers(args.labels, "label")
    check_counts(len(preds), len(labels), args.preds, args.labels)
    words = tuple(w.strip() for w in args.label_words.split(",")) if args.label_words else LABEL_WORDS
    return score_mnli_generation(preds, labels, label_words=words)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.metrics",
        description="Score system outputs like the official scorers. Prints one JSON object as the last line of stdout.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")

    p = sub.add_parser("e2e", help="E2E: BLEU NIST METEOR ROUGE_L CIDEr (needs Java)", epilog=EPILOG,
                       description="Files in the official e2e-metrics layout: REFS has each MR's references one per line, "
                                   "a blank line between MRs; HYP has one output per line, one per MR, same order.")
    p.add_argument("--refs", required=True, metavar="REFS.txt")
    p.add_argument("--hyp", required=True, metavar="HYP.txt")
    p.set_defaults(run=run_e2e)

    for name in ("webnlg", "dart"):
        p = sub.add_parser(name, help=f"{name.upper() if name == 'dart' else 'WebNLG'}: BLEU METEOR TER (METEOR needs Java)",
                           epilog=EPILOG,
                           description="HYP: one output per line. References either as the decode script writes them "
                                       "(--refs-prefix DIR/reference reads DIR/reference0, reference1, ..., one line per "
                                       "example each) or grouped (--refs FILE: an example's references one per line, a "
                                       "blank line between examples). Text is lowercased and split on non-word "
                                       "characters first (idempotent on decode-script files).")
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--refs-prefix", metavar="PREFIX")
        src.add_argument("--refs", metavar="GROUPED.txt")
        p.add_argument("--hyp", required=True, metavar="HYP.txt")
        p.add_argument("--mode", choices=("corrected", "faithful"), default="corrected",
                       help="corrected (default): N segments, real METEOR. faithful: as eval.py on files ending in a "
                            "newline: TER over N+1 segments, METEOR null (the script's -1)")
        p.add_argument("--num-refs", type=int, default=6, help="references per example (default 6, as the LoRA code)")
        p.add_argument("--metrics", default="BLEU,METEOR,TER", help="comma list (default BLEU,METEOR,TER)")
        if name == "webnlg":
            p.add_argument("--seen", metavar="FLAGS.txt",
                           help="one flag per example (1/0, true/false, seen/unseen): report unseen, seen and all")
        p.set_defaults(run=run_webnlg)

    p = sub.add_parser("glue", help="GLUE: HF glue metric of one task", epilog=EPILOG,
                       description="PREDS and LABELS: one class id (or float, STS-B) per line.")
    p.add_argument("--task", required=True, help="cola sst2 mrpc qqp stsb mnli qnli rte wnli (also sst-2, sts-b, mnli-m/-mm)")
    p.add_argument("--preds", required=True, metavar="P.txt")
    p.add_argument("--labels", required=True, metavar="L.txt")
    p.set_defaults(run=run_glue)

    p = sub.add_parser("samsum", help="SAMSum: ROUGE-1/2/L F (0-100)", epilog=EPILOG,
                       description="HYP and REFS: one summary per line, same order.")
    p.add_argument("--hyp", required=True, metavar="HYP.txt")
    p.add_argument("--refs", required=True, metavar="REFS.txt")
    p.add_argument("--no-stemmer", action="store_true", help="turn Porter stemming off (on by default)")
    p.set_defaults(run=run_samsum)

    p = sub.add_parser("wikisql", help="WikiSQL: logical-form accuracy and exact match", epilog=EPILOG,
                       description="PRED: one generated SQL per line (SELECT <agg>(<col>) FROM table WHERE <col> <op> "
                                   "<value> AND ...). GOLD: WikiSQL questions jsonl (uses 'sql' and 'table_id'). "
                                   "TABLES: WikiSQL tables jsonl ('id', 'header'); without it columns are named "
                                   "col0..colK (only meaningful for SQL written with those names).")
    p.add_argument("--pred", required=True, metavar="P.txt")
    p.add_argument("--gold", required=True, metavar="dev.jsonl")
    p.add_argument("--tables", metavar="dev.tables.jsonl")
    p.set_defaults(run=run_wikisql)

    p = sub.add_parser("mnli", help="MNLI-m as generation: accuracy of the label word", epilog=EPILOG,
                       description="PREDS: one generation per line. LABELS: one gold label per line, an id (0 "
                                   "entailment, 1 neutral, 2 contradiction) or the word.")
    p.add_argument("--preds", required=True, metavar="P.txt")
    p.add_argument("--labels", required=True, metavar="L.txt")
    p.add_argument("--label-words", help="comma list in id order (default entailment,neutral,contradiction)")
    p.set_defaults(run=run_mnli)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except MetricInputError as exc:
        parser.error(str(exc))  # prints usage + "error: ..." and exits 2
    print(json.dumps(_clean_json(result), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
