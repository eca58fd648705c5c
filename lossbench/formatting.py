"""Numbers as tables show them: a fixed number of decimals, "-" where a value is missing."""

import math


def format_number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
