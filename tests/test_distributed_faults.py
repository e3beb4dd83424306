"""Any rank that ends with a non-zero status ends the job within seconds on every rank, and
the mismatch checks raise the promised ValueError (under a real ``mpiexec -n 2``)."""

from pathlib import Path

import pytest

from tests import mpi_fault_worker
from tests.test_distributed import Launch

WORKER = str(Path(mpi_fault_worker.__file__))


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [
        ("sys.exit", 3, "rank 1 of 2 is exiting with status 3: aborting all ranks"),
        ("SystemExit", 4, "rank 1 of 2 is exiting with status 4"),
        ("exit", 5, "rank 1 of 2 is exiting with status 5"),
        ("exception", 1, "rank 1 of 2 raised RuntimeError: aborting all ranks"),
        ("SIGTERM", None, "Terminated"),
    ],
)
def test_a_rank_ending_non_zero_ends_the_job(mode, status, words):
    launch = Launch(2, mode, script=WORKER)
    rc, elapsed = launch.wait(timeout=60)
    out = launch.output
    assert rc != 0 and (status is None or rc == status), (rc, out)
    assert elapsed < 15, f"took {elapsed:.1f} s:\n{out}"
    assert words in out, out
    assert out.count("at step 3") == 2


def test_a_clean_early_end_waits_for_the_others():
    launch = Launch(2, "exit0", script=WORKER)
    rc, _ = launch.wait(timeout=60)
    assert rc == 0, launch.output
    assert "rank 0 finished after rank 1 left" in launch.output


def test_allreduce_grads_with_other_parameter_counts_raises_on_every_rank():
    launch = Launch(2, "mismatch", script=WORKER)
    rc, _ = launch.wait(timeout=60)
    out = launch.output
    assert rc == 0, out
    assert "Message truncated" not in out
    for rank in (0, 1):
        assert f"rank {rank} ValueError: allreduce_grads:" in out, out
