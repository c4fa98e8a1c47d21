"""A plain `pytest` in this repository: short output, course order, and where to start (see
grading/pytest_course.py). It only changes what pytest prints, never a grade: the grader runs the tests
with its own configuration and without conftest files."""
from grading.pytest_course import (pytest_addoption, pytest_collection_modifyitems,  # noqa: F401
                                   pytest_configure, pytest_terminal_summary)
