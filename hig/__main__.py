"""`python -m hig` is the `hig` command."""

from hig.command import main

main()
