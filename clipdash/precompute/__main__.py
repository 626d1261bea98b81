import sys

from clipdash.precompute.cli import main

sys.exit(main())
