"""Suite-wide settings: one intra-op thread.

The test suite runs many small tensor ops, for which torch's thread pool is pure overhead, and on a
loaded 2-core machine an oversubscribed OpenMP pool makes small ``index_add`` calls 100x slower. The
environment variable also reaches the subprocesses that some tests start (examples, DDP, the study).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
