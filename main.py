"""`python main.py` is the `hig` command (hig/command.py): the gateway's command line with the demo beside it."""

from hig.command import main

if __name__ == "__main__":
    main()
