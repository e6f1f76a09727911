"""One module per `servingbench` command: arguments and a `run` that calls into the package."""
