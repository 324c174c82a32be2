"""Every experiment's t4 plan, built through its own API as the notebook builds it, run end to
end with ``offline=True`` (local stand-ins of the same shape) for a couple of steps at the real
widths, sequence lengths and vocabularies. Only counts shrink (steps, batches, sequences,
shuffles), never widths."""

# --- 000 action quanta ---------------------------------------------------------------------

# --- 026 band transformer / 013 differential LR ----------------------------------------------

# --- 033 spectral band attention / grokking ---------------------------------------------------
