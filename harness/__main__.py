"""`python -m pairbench.harness` is the `pairbench` command."""

from .cli import main

main(prog_name="pairbench")
