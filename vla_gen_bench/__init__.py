"""vla-gen-bench: how well does a vision-language-action policy generalize, and why.

Importing this package does no work: simulator, torch and model libraries load inside the functions that need them.
"""

__version__ = "0.1.0"
