"""The machinery every estimator shares, below the scikit-learn layer and above the flows.

The training loop (``training``) and what it is built from (one flat parameter buffer, the
parameter average, the compiled loss), chunked inference without gradients (``chunking``),
devices and torch threads, and a fitted flow's state as plain arrays (``persistence``).
Modules here take validated arrays and tensors, never raw user input, and import nothing from
the estimators above them.
"""
