"""Root pytest configuration (it also applies to the doctests in dezero/).

NumPy 2 prints scalars as ``np.float64(1.0)`` where NumPy 1.x prints ``1.0``. The suite
runs on both, so doctests are written in the 1.x style and NumPy 2 is asked to print that
way too.
"""

import importlib.util

import numpy as np

if int(np.__version__.split(".")[0]) >= 2:
    np.set_printoptions(legacy="1.25")

# dezero/distributed.py's doctests start a one-rank MPI world: they need mpi4py (dezero-next[mpi]).
collect_ignore = [] if importlib.util.find_spec("mpi4py") else ["dezero/distributed.py"]
