"""servingbench: serve one trained model several ways, load it with Locust, compare the numbers."""

__all__ = ["__version__"]

__version__ = "0.1.0"
