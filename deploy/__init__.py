"""What the writers (:mod:`export`) and the readers (:mod:`hw_sim`) share; imports only :mod:`lorsp`.

The one description of a spiking network and its NIR reader (:mod:`deploy.network`,
:mod:`deploy.nir_reader`), the fixed-point conversion (:mod:`deploy.fixed_point`), the
bundle layout and manifest (:mod:`deploy.bundle`, :mod:`deploy.manifest`), the host-side
tensors (:mod:`deploy.host`) and the ONNX runtime (:mod:`deploy.onnx_runtime`).
"""
