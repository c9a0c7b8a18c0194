"""Peak tensor memory of a computation, counted the same way on every device.

`PeakTensorMemory` is a torch dispatch mode that sees every tensor an operator returns (below
torch.func's vmap and grad, so it sees the real batched tensors) and keeps the bytes of the
storages that are still alive: a storage enters when an operator creates it and leaves when its
last reference dies. `peak` is the largest live total during the block, i.e. what the block
allocated on top of what existed before it (storages created earlier are not counted, nor are
views of them). It approximates what `torch.cuda.max_memory_allocated` measures after a reset,
without the caching allocator's rounding; it does not see scratch memory used inside a single
operator (e.g. a convolution's workspace). It does not depend on the machine or on the allocator,
so the count is reproducible run to run. It slows the block down (a Python call per operator): measure
one step, not a training run.
"""
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class PeakTensorMemory(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.live = {}  # storage data pointer -> (weak reference, bytes)
        self.now = 0
        self.peak = 0

    def _drop_dead(self):
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now -= self.live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._drop_dead()
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in inputs or key in self.live or storage.nbytes() == 0:
                continue  # a view or an in-place result, or already counted
            self.live[key] = (StorageWeakRef(storage), storage.nbytes())
            self.now += storage.nbytes()
        self.peak = max(self.peak, self.now)
        return out


def peak_tensor_bytes(fn) -> int:
    """Bytes of the largest set of tensors alive at once while fn() runs (module docstring)."""
    with PeakTensorMemory() as counter:
        fn()
    return counter.peak
