"""hivemind's DHT without torch, for the bootstrap node (`swarmnode bootstrap --transport hivemind`).

`import hivemind.dht.node` first runs `hivemind/__init__`, which imports the averager, the optimizer and
MoE, and so torch (about 250 MiB resident and many seconds of start on a small machine); `hivemind.utils`
and `hivemind.dht` import torch too, through `MPFuture` and `TensorDescriptor`. The DHT node itself
(`DHTNode`, its protocol, routing, storage, validation, and `hivemind.p2p`) needs none of that. So, in a
process that has not imported hivemind yet, `import_dht_without_torch` puts plain package modules for
`hivemind`, `hivemind.utils` and `hivemind.dht` in `sys.modules` (their search path, not their
`__init__`), with the names of `hivemind.utils` the DHT uses taken from its torch-free submodules; the DHT
then imports as usual. If anything of that fails (another hivemind version), it undoes it and the normal
import (with torch) follows. Only the bootstrap uses it: a node trains with torch anyway.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

UTILS_NAMES = {
    "asyncio": ("as_aiter", "amap_in_executor", "switch_to_uvloop", "enter_asynchronously"),
    "logging": ("get_logger",),
    "serializer": ("MSGPackSerializer", "SerializerBase"),
    "timed_storage": (
        "DHTExpiration",
        "ValueWithExpiration",
        "get_dht_time",
        "MAX_DHT_TIME_DISCREPANCY_SECONDS",
        "TimedStorage",
    ),
}
"""What `hivemind.utils` exports that the DHT and p2p modules import from it, by torch-free submodule."""
DHT_MODULES = ("hivemind.dht.node", "hivemind.dht.routing", "hivemind.dht.storage", "hivemind.dht.validation")


def _package(name: str) -> types.ModuleType:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"no package {name}")
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    sys.modules[name] = module
    return module


def _forget_hivemind() -> None:
    for name in [n for n in sys.modules if n == "hivemind" or n.startswith("hivemind.")]:
        del sys.modules[name]


def import_dht_without_torch() -> bool:
    """Import hivemind's DHT node without hivemind's package `__init__`s (see the module docstring). False,
    and nothing changed, when hivemind is imported already, when it cannot be done, or when torch came in."""
    if "hivemind" in sys.modules:
        return False
    torch_before = "torch" in sys.modules
    try:
        _package("hivemind")
        utils = _package("hivemind.utils")
        _package("hivemind.dht")
        for sub, names in UTILS_NAMES.items():
            module = importlib.import_module(f"hivemind.utils.{sub}")
            for name in names:
                setattr(utils, name, getattr(module, name))
        for name in (*DHT_MODULES, "hivemind.p2p", "hivemind.utils.multiaddr"):
            importlib.import_module(name)
    except Exception:  # another hivemind layout: the ordinary import, torch and all
        _forget_hivemind()
        return False
    if "torch" in sys.modules and not torch_before:  # nothing saved; leave the ordinary package to load
        _forget_hivemind()
        return False
    return True
