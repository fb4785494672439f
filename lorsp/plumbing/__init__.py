"""Plumbing every layer shares, none of it the method: errors and the one-line CLI wrapper, atomic files
and published outputs, option parsing, registries, deadlines, devices, precision, loaders, provenance and
checks on tensors read from files."""
