"""The book's one smoother."""


def moving_average(values, k: int) -> list:
    """Centred moving average over k points, the window cut at the ends (so the output has
    the input's length and an end value averages only real points, no zero padding)."""
    values = list(values)
    h = k // 2
    return [sum(values[max(0, i - h):i + h + 1]) / len(values[max(0, i - h):i + h + 1]) for i in range(len(values))]
