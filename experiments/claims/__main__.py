"""`python -m experiments.claims`: read the ledger and the records, write `results/claims.json`
and `results/CLAIMS.md`. Owns the command line; never trains."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..paths import results_dir
from ..tables.collect import scan
from .evaluate import evaluate_claim
from .report import to_json, to_markdown
from .spec import LEDGER_DIR, LedgerError, load_ledger
from .stats import NOT_RUN


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.claims", description=__doc__)
    p.add_argument("--results", type=Path, default=None,
                   help="the results directory holding runs/ (default: results/)")
    p.add_argument("--ledger", type=Path, default=LEDGER_DIR, help="the claim files")
    p.add_argument("--out", type=Path, default=None,
                   help="where claims.json and CLAIMS.md go (default: the results directory)")
    p.add_argument("--claim", action="append", default=None,
                   help="only this claim id (repeatable); prints it, writes nothing")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any claim lacks its records (not run here)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    results = args.results or results_dir()
    try:
        ledger = load_ledger(args.ledger)
    except LedgerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    claims = ledger.claims
    if args.claim:
        unknown = set(args.claim) - {c.id for c in claims}
        if unknown:
            print(f"error: unknown claim id(s) {sorted(unknown)}; ids: "
                  f"{', '.join(c.id for c in claims)}", file=sys.stderr)
            return 2
        claims = [c for c in claims if c.id in args.claim]
    records, _ = scan(results)
    done = [evaluate_claim(c, records, results, ledger.rules) for c in claims]
    doc = to_json(done, ledger.rules, results)
    if args.claim:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    out = args.out or results
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (out / "CLAIMS.md").write_text(to_markdown(doc), encoding="utf-8")
    for r in done:
        print(f"{r.verdict:>13}  {r.claim.id}")
    print(f"wrote {out / 'claims.json'} and {out / 'CLAIMS.md'}: "
          + ", ".join(f"{n} {v}" for v, n in doc["summary"].items()))
    if args.strict and any(r.verdict == NOT_RUN for r in done):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
