"""Training: MTP and value losses, token selection and the training loop's components.

Kedro-free. Import the modules you need directly (``weighted_mtp.training.losses``, ...);
this package file stays empty so importing one component does not import them all.
"""
