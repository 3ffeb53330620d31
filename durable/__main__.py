"""`python -m durable`: the `durable` command."""

import sys

from durable.cli import main

sys.exit(main())
