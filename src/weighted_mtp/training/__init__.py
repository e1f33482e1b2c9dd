"""Training: one :class:`~weighted_mtp.training.trainer.Trainer` for every stage, the
per-stage :class:`~weighted_mtp.training.objective.Objective`, and their components
(losses, step, sums, checkpoints, sampler, schedule, metrics).

Kedro-free. Import the modules you need directly (``weighted_mtp.training.trainer``, ...);
this package file stays empty so importing one component does not import them all.
"""
