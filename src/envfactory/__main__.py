"""`python -m envfactory` runs the CLI."""

from envfactory.cli.app import main

if __name__ == "__main__":
    main()
