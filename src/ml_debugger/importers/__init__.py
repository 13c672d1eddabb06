"""Importers: predictions made by other tools, recorded as committed epochs of a model version."""
