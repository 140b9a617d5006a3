"""``python -m fastlr`` runs the command line, like ``fastlr``."""

from .cli import main

raise SystemExit(main())
