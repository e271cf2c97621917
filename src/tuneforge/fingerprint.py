"""Fingerprints of what produced a result, so a stored answer or cache entry is reused only when
the model that made it is the same one.

A model's name says little: a retrained model saved to the same path, a merged adapter, or the
same weights in another dtype all answer differently under one name. So the fingerprint is a digest
of the weights themselves (names, dtypes, shapes and bytes of every parameter and buffer), taken
in memory. Hand-written because no library offers one for an in-memory torch module; BLAKE2b runs
at ~1 GB/s, ~0.5 s for a 135M-parameter model in fp32, and the digest is memoised on the module
until a parameter is changed in place (torch bumps a tensor's version counter on every in-place
write, e.g. an optimizer step or a LoRA merge).
"""

from __future__ import annotations

import hashlib


def _state_key(model) -> tuple:
    return tuple((name, t.data_ptr(), t._version) for name, t in model.state_dict(keep_vars=True).items())


def model_digest(model) -> str:
    """Hex BLAKE2b-128 digest of a torch module's weights and buffers (memoised until they change)."""
    import torch

    key = _state_key(model)
    cached = getattr(model, "_tuneforge_digest", None)
    if cached and cached[0] == key:
        return cached[1]
    h = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())  # buffer protocol: no copy
    digest = h.hexdigest()
    object.__setattr__(model, "_tuneforge_digest", (key, digest))
    return digest
