"""python -m glassnet -> glassnet.cli.main()."""

import sys

from glassnet.cli import main

sys.exit(main())
