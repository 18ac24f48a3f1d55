"""Thread control shared by the kernel benchmarks."""

import torch

THREADS_HELP = (
    "torch and numba threads (0: library default); 1 gives stable timings on a loaded machine, "
    "where every parallel region waits for a core"
)


def set_threads(threads: int) -> None:
    """Use `threads` threads in torch and numba (0 leaves the defaults)."""
    if threads <= 0:
        return
    try:  # numba first: starting its threading layer can reset torch's thread count
        import numba

        numba.set_num_threads(threads)
    except ImportError:
        pass
    torch.set_num_threads(threads)
