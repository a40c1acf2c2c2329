"""``zoo fit``: Lightning's CLI over the zoo's modules (agents, and reward-model training).

Rooms: :mod:`~zoo.fit.recipes` (``--config <name>`` of a shipped recipe, composed recipes expanded),
:mod:`~zoo.fit.lightning_cli` (the LightningCLI the command and the benchmark grid's in-process cells build),
:mod:`~zoo.fit.resume` (``--ckpt_path``: the last checkpoint of an experiment, checked against the recipe),
:mod:`~zoo.fit.entries` (recipe entries read as classes and plain data) and :mod:`~zoo.fit.errors` (the user error
behind what jsonargparse, OmegaConf and torch raise).
"""
