"""Text for ``lossbench losses``: the registry at a glance, or one loss in full."""

from lossbench.errors import UserError
from lossbench.losses import LOSSES, knob_defaults


# Knobs every loss has, with PyTorch's meaning; listed once rather than per loss.
COMMON_KNOBS = ("weight", "ignore_index", "reduction")
COMMON_SOURCE = "as torch.nn.CrossEntropyLoss"


def _defaults_text(name: str) -> str:
    knobs = {k: v for k, v in knob_defaults(name).items() if k not in COMMON_KNOBS}
    return ", ".join(f"{k}={v}" for k, v in knobs.items()) or "-"


def list_losses() -> str:
    width = max(map(len, LOSSES))
    lines = [f"{name:<{width}}  {cls.description}  [{_defaults_text(name)}]" for name, cls in LOSSES.items()]
    return "\n".join(lines) + (
        "\n\nEvery loss also takes weight (per class), ignore_index and reduction, as torch.nn.CrossEntropyLoss."
        "\nlossbench losses NAME shows one in full; lossbench train loss=NAME loss.KNOB=VALUE trains with it."
    )


def describe_loss(name: str) -> str:
    if name not in LOSSES:
        raise UserError(f"loss {name!r} is unknown: valid losses are {', '.join(LOSSES)}")
    cls = LOSSES[name]
    defaults = knob_defaults(name)
    width = max((len(f"{k} = {v}") for k, v in defaults.items()), default=0)
    knobs = "\n".join(f"  {f'{k} = {v}':<{width}}  {cls.defaults_from.get(k, COMMON_SOURCE if k in COMMON_KNOBS else '')}".rstrip()
                      for k, v in defaults.items()) or "  (none)"
    ranges = getattr(cls, "knob_ranges", {})
    if ranges:
        knobs += "\nvalid ranges:\n" + "\n".join(f"  {k}: {r}" for k, r in ranges.items())
    takes = {"logits": "the model's class scores", "log_probs": "log-probabilities (log_softmax of the scores)",
             "embeddings": "the embedding; the loss owns the class weights (classes x embedding) and predicts with them"}
    extra = f"\ninput: {takes[cls.inputs]}" + ("\nviews: two augmented views of each image per step" if cls.views == 2 else "")
    conventions = "".join(f"\n  - {c}" for c in cls.conventions)
    conventions = f"\n\nconventions:{conventions}" if conventions else ""
    return (f"{name}: {cls.description}\n\nformula: {cls.formula}\n{extra}\n\nknobs (default, and where it comes from):\n"
            f"{knobs}{conventions}\n\npaper: {cls.paper}")
