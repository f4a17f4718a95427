"""Topic model family: latent Dirichlet allocation by online variational Bayes."""
