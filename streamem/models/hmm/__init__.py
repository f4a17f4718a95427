"""Hidden Markov model family: the Gaussian HMM, forward-backward scans and starts."""
