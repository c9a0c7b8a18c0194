"""Meta-learning (the fo-maml chapter): task families with closed-form references (`tasks`),
meta-gradient estimators from exact MAML to the first-order ones (`estimators`), and the outer
loop with plain, clipped and normalized steps (`outer`)."""
