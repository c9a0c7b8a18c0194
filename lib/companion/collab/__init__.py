"""Collaborative learning: many clients' models trained at once (stacked along a client axis),
cluster-structured client data, CoBo's collaboration weights and the personalisation
baselines (Local, FedAvg, fine-tuned FedAvg, Ditto, IFCA, cluster Oracle)."""
