"""``python -m console.simulator <scenario> ...``: the simulator without the console's settings."""

from console.simulator.commands import main

if __name__ == "__main__":
    main()
