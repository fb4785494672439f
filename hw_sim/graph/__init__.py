"""Any NIR graph on the simulated chip: ``lorsp-hwsim MODEL.nir`` (docs/hwsim-nir.md).

``runner`` steps a flattened graph (:mod:`deploy.nir_graph`) with ``synapses`` and ``neurons``;
``counts`` and ``chip_fit`` turn a run into operations, energy and cores (``fixed_fit``: those
either fixed-point path places); ``fixed`` runs the chains lorsp's fixed-point path expresses;
``simulate`` and ``report`` make the report; ``inputs`` and ``cli`` are the command.
"""
