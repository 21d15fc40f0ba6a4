"""`make test` runs each slow group's tests one after another in one process (tests/conftest.py): pytest-xdist's
`--dist loadgroup` reads a test's group into its node id. Both ways that silently stopped are checked here: a group
added after pytest-xdist read the marks, and pytest 9.2, which ignores the node id xdist writes (pyproject.toml)."""

import pytest


@pytest.mark.chaos  # one of the slow groups: this test is one of its tests
def test_a_slow_groups_tests_run_in_one_process(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist's --dist loadgroup")
    # Else each group's tests run in both processes at once (two Slurm clusters, two vLLM sweeps, ...).
    assert request.node.nodeid.endswith("@chaos"), "pytest-xdist's groups did not take"
