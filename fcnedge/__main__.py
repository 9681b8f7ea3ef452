"""`python -m fcnedge` is the `fcnedge` command."""
from fcnedge.cli import main

raise SystemExit(main())
