"""The models servingbench trains and serves: catalog, training, artifact files, expected answers.

Imports stay light here (no scikit-learn or xgboost at import time), so the load generator and
the report can read model metadata without paying for the model libraries.
"""
