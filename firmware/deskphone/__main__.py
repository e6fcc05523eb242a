"""`python -m deskphone` is the same as the `deskphone` command."""

from deskphone.cli import main

raise SystemExit(main())
