"""Contrastive training: pairs and sampling, losses, the cached-gradient step, the trainer."""
