"""`python -m fcnedge` is the `fcnedge` command."""
from fcnedge import console_main

raise SystemExit(console_main())
