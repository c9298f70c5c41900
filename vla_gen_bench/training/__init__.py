"""Training baselines: demonstrations, datasets, SFT, and the RL algorithms (import the modules directly; importing
this package loads nothing heavy).

* ``demos``     scripted-oracle demonstrations on training pools (``vgb collect-demos``), idle-action filter, card
* ``dataset``   ``DemoDataset``: a PyTorch map dataset over a demonstration folder, images memory-mapped
* ``sft``       supervised fine-tuning of OpenVLA on the action tokens (cleanrl style: ``SFTConfig`` + ``train``)
* ``commands``  ``CollectDemos`` / ``TrainSFT`` dataclasses (tyro) and their handlers
"""
