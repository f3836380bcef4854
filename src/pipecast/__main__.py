"""``python -m pipecast``: the same as the ``pipecast`` command."""

from pipecast.cli import run

if __name__ == "__main__":
    run()
