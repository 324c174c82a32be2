"""Experiment 000 (Action Quanta): do MLP neurons of two language models correspond?

``python -m akira_nb action_quanta`` and ``notebooks/000_action_quanta.py`` on the
:mod:`akira_nb.alignment` library: ``presets`` (sizes, :class:`~.presets.Study`,
:func:`~.presets.study`), ``ground_truth`` (two grokked models' matched neurons and their key
frequencies: the one module that uses :mod:`akira_nb.grokking`), ``claims`` (the reference's
numbers, one function per claim, the kit-summary section), ``experiment`` (the runner and its
tables), ``plots``, ``widgets`` (the explorer) and ``cli`` (no torch import at module level).
"""
