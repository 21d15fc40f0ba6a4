"""Host identity is the kernel (its boot id), never the hostname; WATTSWEEP_HOST_ID overrides it, checked."""

from __future__ import annotations

import pytest

from worker.process.inventory import HostIdentityError, host_identity


def test_boot_id_names_the_host(tmp_path):
    boot = tmp_path / "boot_id"
    boot.write_text("0b7f1c2e-1111-4222-8333-444455556666\n")
    assert host_identity(None, str(boot)) == "boot:0b7f1c2e-1111-4222-8333-444455556666"
    with open("/proc/sys/kernel/random/boot_id") as handle:
        assert host_identity() == f"boot:{handle.read().strip()}"


def test_explicit_host_id_wins_and_is_checked(tmp_path):
    assert host_identity("rack2-node7", str(tmp_path / "missing")) == "rack2-node7"
    for bad in ("", "two words", "x" * 101, "a/b"):
        with pytest.raises(HostIdentityError, match="WATTSWEEP_HOST_ID"):
            host_identity(bad)


def test_a_kernel_without_boot_id_asks_for_an_explicit_one(tmp_path):
    with pytest.raises(HostIdentityError, match="set WATTSWEEP_HOST_ID"):
        host_identity(None, str(tmp_path / "missing"))
