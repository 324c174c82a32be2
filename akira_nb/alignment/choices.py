"""The AQ pipeline's named choices, torch-free (the CLI's ``--help`` reads them from here)."""

INPUT_TYPES = ("random", "text", "both")
PAIRINGS = ("index", "depth")
RULES = ("statistical", "percentile", "fixed")
MATCH_METHODS = ("emd", "sinkhorn", "hungarian")
TEXT_CORPORA = ("offline", "wikitext-2", "wikitext-103")
METHODS = ("basic", "gurnee", "ot", "procrustes")

__all__ = ["INPUT_TYPES", "MATCH_METHODS", "METHODS", "PAIRINGS", "RULES", "TEXT_CORPORA"]
