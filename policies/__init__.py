"""Learned policies (torch). Imported lazily by the agents that use them: ``import agents`` stays torch-free."""
