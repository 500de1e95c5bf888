"""The stages of a run, in order (see runner.STAGES)."""
