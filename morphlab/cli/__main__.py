"""``python -m morphlab.cli``."""
import sys

from morphlab.cli import main

sys.exit(main())
