"""``python -m voicehello``."""

from voicehello.cli import main

raise SystemExit(main())
