"""bookrec: the offline toolkit of a book recommender."""

__version__ = "0.1.0"
