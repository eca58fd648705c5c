"""Text for ``lossbench losses``: the registry at a glance, or one loss in full."""

from lossbench.errors import UserError
from lossbench.losses import LOSSES, knob_defaults


def _defaults_text(name: str) -> str:
    knobs = knob_defaults(name)
    return ", ".join(f"{k}={v}" for k, v in knobs.items()) or "-"


def list_losses() -> str:
    width = max(map(len, LOSSES))
    lines = [f"{name:<{width}}  {cls.description}\n{'':<{width}}  defaults: {_defaults_text(name)}" for name, cls in LOSSES.items()]
    return "\n".join(lines) + "\n\nlossbench losses NAME shows one loss; lossbench train loss=NAME loss.KNOB=VALUE trains with it."


def describe_loss(name: str) -> str:
    if name not in LOSSES:
        raise UserError(f"loss {name!r} is unknown: valid losses are {', '.join(LOSSES)}")
    cls = LOSSES[name]
    knobs = "\n".join(f"  {k} = {v}" for k, v in knob_defaults(name).items()) or "  (none)"
    ranges = getattr(cls, "knob_ranges", {})
    if ranges:
        knobs += "\nvalid ranges:\n" + "\n".join(f"  {k}: {r}" for k, r in ranges.items())
    return f"{name}: {cls.description}\n\nformula: {cls.formula}\n\nknobs (defaults):\n{knobs}\n\npaper: {cls.paper}"
