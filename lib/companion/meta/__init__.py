"""Meta-learning (the fo-maml chapter): task families with closed-form references (`tasks`),
few-shot MNIST-1D tasks for a CNN (`fewshot`), meta-gradient estimators from exact MAML to the
first-order ones (`estimators`), and the outer loops with plain, clipped and normalized steps or
Adam (`outer`)."""
