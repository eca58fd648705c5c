"""Text for ``lossbench losses``: the registry at a glance, or one loss in full."""

from lossbench.losses.knob_tables import COMMON_KNOBS, own_knobs
from lossbench.losses.registry import LOSSES, loss_class

TAKES = {
    "logits": "the model's class scores",
    "log_probs": "log-probabilities (log_softmax of the scores)",
    "embeddings": "the embedding; the loss owns the class weights (classes x embedding) and predicts with them",
}


def _value(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _defaults_text(name: str) -> str:
    return ", ".join(f"{k}={_value(knob.default)}" for k, knob in own_knobs(name).items()) or "-"


def list_losses() -> str:
    width = max(map(len, LOSSES))
    lines = [f"{name:<{width}}  {cls.description}  [{_defaults_text(name)}]" for name, cls in LOSSES.items()]
    return "\n".join(lines) + (
        f"\n\nEvery loss also takes {', '.join(COMMON_KNOBS)}, as torch.nn.CrossEntropyLoss."
        "\nlossbench losses NAME shows one in full; lossbench train loss=NAME loss.KNOB=VALUE trains with it."
    )


def _knob_lines(cls) -> str:
    table = cls.knob_table()
    if not table:
        return "  (none)"
    return "\n".join(
        f"  {key} = {_value(knob.default)}    valid: {knob.valid_values()}\n      {knob.help}\n"
        f"      default: {knob.source}"
        for key, knob in table.items()
    )


def describe_loss(name: str) -> str:
    cls = loss_class(name)
    extra = f"\ninput: {TAKES[cls.inputs]}" + ("\nviews: two augmented views of each image per step" if cls.views == 2 else "")
    conventions = "".join(f"\n  - {c}" for c in cls.conventions)
    conventions = f"\n\nconventions:{conventions}" if conventions else ""
    return (f"{name}: {cls.description}\n\nformula: {cls.formula}\n{extra}\n\n"
            f"knobs (the default, what is valid, what it does, where the default comes from):\n"
            f"{_knob_lines(cls)}{conventions}\n\npaper: {cls.paper}")
