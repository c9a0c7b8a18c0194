"""The base of the trainer's probes (see `companion.train.train`): a probe samples each of
the first `dense` steps and then every `every`-th step, keeps its measurements in
`records`, and is checkpointed with the run."""


class Probe:
    def __init__(self, every: int = 10, dense: int = 20):
        self.every, self.dense = every, dense
        self.records = []

    def wants(self, t: int) -> bool:
        return t < self.dense or t % self.every == 0

    def before_step(self, t, model, optimizer, batch):
        """Called after the gradient of update t is computed and clipped."""

    def after_step(self, t, model, optimizer):
        """Called after update t."""

    def state_dict(self):
        return {"records": list(self.records)}

    def load_state_dict(self, state):
        self.records = list(state["records"])
