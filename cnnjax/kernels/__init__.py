"""The CPU fast path: oneDNN's convolutions through XLA's FFI (`onednn`), the
rewrites that route the models' convolutions and pooling to them
(`rewrites`), and compiling and caching C++ sources where they run
(`build`, also used by the input pipeline's resizing op). The models see
only `cnnjax.models.layers`."""
