"""Model families for the stepwise EM engine."""
