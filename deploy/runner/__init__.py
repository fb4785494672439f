"""lorsp's reference runner, ``run_bundle.py``: a bundle run from its files alone (numpy, h5py, safetensors,
onnxruntime; nothing of lorsp). It lives in the package so that every install, a wheel included, ships it into
the bundles it exports; ``examples/run_bundle.py`` links here for readers of the source tree."""
