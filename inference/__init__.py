"""Statistics: priors, likelihoods, engines and diagnostics on a forward function θ ↦ ŷ."""
