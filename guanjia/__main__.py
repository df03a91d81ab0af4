"""`python -m guanjia` is the `guanjia` command."""

from guanjia.cli import main

main()
