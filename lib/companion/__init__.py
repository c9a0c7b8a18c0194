"""companion: the library behind the runnable companion to ten EPFL ML papers.

A chapter notebook does `session = companion.start("<chapter>", globals())`, then calls
its experiment module for results and figures; see design.md for the architecture."""
from companion.chapters import start

__all__ = ["start"]
