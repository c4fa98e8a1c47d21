"""The TinyTorch Classroom grader and the `tito` command-line tool."""

__version__ = "0.1.0"
