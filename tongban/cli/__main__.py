"""``python -m tongban.cli``: the ``tongban`` command."""

from tongban.cli import run

if __name__ == "__main__":
    run()
