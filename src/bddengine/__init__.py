"""bddengine: a data engine for driving perception on BDD100K."""

__version__ = "0.1.0"
