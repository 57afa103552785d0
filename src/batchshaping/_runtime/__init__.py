"""What every layer of the package runs on: the numba decorator, the thread pool, named choices.

Nothing here knows about incomplete beta functions, priors or losses.
"""
