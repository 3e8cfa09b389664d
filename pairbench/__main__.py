"""`python -m pairbench` is the `pairbench` command."""

from pairbench.cli import main

main(prog_name="pairbench")
