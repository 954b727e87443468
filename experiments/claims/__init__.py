"""The claims ledger (issue #23): every claim of the paper as data (`ledger/*.yaml`), the records
that test it, a 95% interval and a verdict. `python -m experiments.claims` writes
`results/claims.json` and `results/CLAIMS.md`."""
