"""`python -m grading ...` is the same as `tito ...` (used where the console script is not on PATH)."""
import sys

from grading.cli import main

sys.exit(main())
