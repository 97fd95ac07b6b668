"""Training engines beside the built-in one: the same inputs and outputs as `bookrec.algorithms`
(a confidence matrix in, float32 factors or node vectors out), computed elsewhere."""
