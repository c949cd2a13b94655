"""metarec: meta-learning recommendation.

Learn, from many users, how to personalise a new user or item from a handful of
interactions. Stages of the data flow, each a sub-package:
``data`` -> ``tasks`` -> ``models`` -> ``learners`` -> ``evaluation`` -> ``cli`` / ``serve``.
"""

__version__ = "0.1.0"
