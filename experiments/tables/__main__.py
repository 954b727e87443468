"""`python -m experiments.tables table=3`: see experiments/tables/cli.py for the arguments.
The entry point only hands the command line to `cli.main`."""
from .cli import main

main()
