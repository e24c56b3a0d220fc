"""A word-level Markov chain backend for charbot (an example third-party plugin)."""

from charbot_markov.backend import MarkovBackend
from charbot_markov.chain import MarkovChain

__all__ = ["MarkovBackend", "MarkovChain"]
