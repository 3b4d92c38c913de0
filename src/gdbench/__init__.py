"""gdbench: reproducible benchmarks of gradient descent on linear regression.

The package is the pipeline's core and works without Snakemake. Data flows one way:
config -> run specs (:mod:`gdbench.runs`) -> engine (:mod:`gdbench.engines`) ->
trajectories and verdicts (:mod:`gdbench.verdicts`) -> tables (:mod:`gdbench.tables`) ->
plots (:mod:`gdbench.plots`).
"""

from gdbench.data import Dataset, DatasetError, DatasetSpec, load_dataset
from gdbench.runs import RunSpec

__all__ = ["Dataset", "DatasetError", "DatasetSpec", "RunSpec", "load_dataset"]
__version__ = "0.1.0"
