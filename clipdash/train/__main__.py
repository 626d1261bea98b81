import sys

from clipdash.train.cli import main

sys.exit(main())
