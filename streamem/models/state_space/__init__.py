"""Linear-Gaussian state space family: the Kalman filter, RTS smoother and its EM."""
