"""Emission distributions that mixtures and hidden Markov models compose (as pomegranate's
distributions are): each gives log-likelihoods per latent class, typed E-step statistics under
class weights, and its M-step."""
