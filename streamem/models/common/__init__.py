"""Pieces the families share: covariance structures, k-means++ starts, compact array encoding,
the vocabularies that turn documents into columns."""
