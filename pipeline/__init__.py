"""Entry points that chain the stages, above every other package.

``lorsp-export`` (:mod:`pipeline.export_cli`) runs an export target of :mod:`export` and,
for a bundle a chip simulator can open, the simulation of :mod:`hw_sim`
(:mod:`pipeline.chip_check`); ``make demo`` (:mod:`pipeline.demo`) trains, exports and
co-simulates. Nothing below imports this package.
"""
