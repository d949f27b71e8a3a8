"""Compiled (numba) kernels: fused training steps for the embedding models, and top-k selection.

Everything here takes and returns numpy arrays and knows nothing of torch or of the model
registry. A model opts into a training kernel through its spec (``ModelSpec.kernel``), which binds
its torch parameters, as numpy views, to the functions here; the trainer's kernel engine
(``embedrec.training.steps``) runs them. numba is imported on first use only.

- ``counter``: the counter-based random numbers behind dropout masks (numpy and numba alike).
- ``adam``: Keras-placement Adam on rows of a table, and the dense engine's catch-up.
- ``tables``: what every training kernel shares (Adam state, per-step constants, batches grouped
  by row).
- ``factors``: dot and biased MF; ``mlp``: the reference's network; ``hybrid``: hybrid_mf.
- ``pairwise`` (BPR) and ``softmax`` (sampled softmax): dot and biased trained to rank;
  ``objectives``: which of these kernels trains a dot-product model with which loss.
- ``conjugate``: implicit ALS's conjugate-gradient solves, a side's rows side by side.
- ``topk``: masked top-k selection over score rows, in parallel.
"""
