"""noisy-emcom: emergent communication over noisy channels (docs/README.md)."""

import os

ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def one_thread_per_job(environ=os.environ) -> bool:
    """Run XLA's CPU code on one thread when the scheduler gave the job one thread.

    Snakemake (and so the SLURM profile) exports OMP_NUM_THREADS = the job's `threads:`. At the
    default sizes two one-thread jobs side by side do about 1.6x the steps of one job on two
    threads (docs/performance.md). Takes effect if run before JAX creates its CPU client (the
    first computation); XLA_FLAGS that already set the threads are left alone. Returns whether
    it changed them.
    """
    flags = environ.get("XLA_FLAGS", "")
    if environ.get("OMP_NUM_THREADS") != "1" or "intra_op_parallelism_threads" in flags:
        return False
    environ["XLA_FLAGS"] = f"{flags} {ONE_THREAD_FLAGS}".strip()
    return True


one_thread_per_job()
