"""`python -m learnmech_core ...`"""

import sys

from .cli import main

sys.exit(main())
