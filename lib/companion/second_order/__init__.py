"""Second-order stochastic optimization (the cubic-newton chapter): the cubic-regularised
Newton step (`cubic`), the test problems and their stochastic oracles (`problems`)."""
