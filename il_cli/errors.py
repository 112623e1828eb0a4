"""User errors: one clear line, exit code 2, never a traceback."""

import difflib


class UserError(Exception):
    """A mistake in what the user asked for. The CLI prints it as one line and exits 2."""


def suggest(name: str, choices) -> str:
    """' (did you mean X?)' for the closest of `choices`, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [c for low, c in lowered.items() if name.lower() in low][:3]
    return f" (did you mean {', '.join(close)}?)" if close else ""
