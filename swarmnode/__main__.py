"""`python -m swarmnode ...` is the `swarmnode` command."""

import sys

from swarmnode.cli import main

sys.exit(main())
