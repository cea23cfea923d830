"""Where jobs run: job files of the reproduce script, submitit (SLURM or local) and preemption-safe stopping."""
