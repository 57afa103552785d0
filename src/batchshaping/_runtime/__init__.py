"""What every layer of the package runs on: the numba decorators, the threads, named choices.

Nothing here knows about incomplete beta functions, priors or losses.
"""
