"""``python -m tollway``."""

from tollway.cli.main import main

main()
