"""The simulated node's fake NVML loaded inside the test process, for unit tests of code that reads NVML.

No namespace and no root needed: the profile file is written and the fake
`pynvml` module is loaded under another name, so the test process keeps
its own (real) `pynvml` for everything else.

    nvml = fake_nvml(SimNode(tmp_path, gpus=8, mig={5: 3}), monkeypatch)
    DeviceStateReader(3, nvml=nvml)
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.simnode import FAKELIB, SimNode
from tests.simnode.fakelib import simnode_profile


def fake_nvml(node: SimNode, monkeypatch) -> ModuleType:
    simnode_profile.save(str(node.profile_path), node.data)
    monkeypatch.setenv(simnode_profile.ENV, str(node.profile_path))
    monkeypatch.setitem(sys.modules, "simnode_profile", simnode_profile)  # what the fake imports by name
    spec = importlib.util.spec_from_file_location("simnode_fake_pynvml", FAKELIB / "pynvml.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module
