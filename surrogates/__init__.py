"""Physics: PINN machinery, physical systems, reference solvers and the trained surrogates."""
