"""Mixture family: the Gaussian mixture, its E-step/M-step, starts, one-row step and document."""
