"""User errors: one clear line, exit code 2, never a traceback."""

import difflib


class UserError(Exception):
    """A mistake in what the user asked for. The CLI prints it as one line and exits 2."""


def suggest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest of `choices` (ignoring case), or '' when none is
    close: a typo's distance (difflib ratio ≥ 0.6), or a choice holding `name` whole where
    `name` has at least three letters or digits ('pend' → Pendulum-v1, never 'a' or '-')."""
    lowered = {}
    for c in choices:
        lowered.setdefault(str(c).lower(), c)
    key = name.lower()
    close = [lowered[c] for c in difflib.get_close_matches(key, list(lowered), n=3, cutoff=0.6)]
    if not close and sum(ch.isalnum() for ch in key) >= 3:
        close = [c for low, c in lowered.items() if key in low][:3]
    return f" (did you mean {', '.join(map(str, close))}?)" if close else ""
