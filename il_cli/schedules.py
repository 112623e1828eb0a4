"""β schedules for DAgger: round i = 1..N -> β_i, the probability that the expert acts.

Plain Python (no JAX), so a bad schedule is reported before anything is imported.
"""

from il_cli.errors import UserError, suggest

SCHEDULES = ("linear", "exponential", "step", "constant")


def beta_schedule(schedule: str, num_rounds: int | None, beta_decay: float = 0.5,
                  beta: float = 0.5) -> list[float]:
    """[β_1, ..., β_N] for a named schedule or an explicit comma list.

    linear: β_i = 1 − (i−1)/(N−1) (1 → 0); exponential: β_i = p^(i−1) with p = beta_decay;
    step: β_1 = 1, then 0 (Ross et al. 2011's β_i = I(i = 1)); constant: β_i = beta.
    An explicit list sets N; with --rounds it must have N values, each in [0, 1].
    """
    if "," in schedule or _is_number(schedule):
        try:
            betas = [float(x) for x in schedule.split(",")]
        except ValueError:
            raise UserError(f"--beta-schedule '{schedule}' is neither a schedule name "
                            f"({', '.join(SCHEDULES)}) nor a comma list of numbers") from None
        if num_rounds is not None and len(betas) != num_rounds:
            raise UserError(f"--beta-schedule has {len(betas)} values but --rounds is {num_rounds}; "
                            f"give one β per round")
        bad = [b for b in betas if not 0.0 <= b <= 1.0]
        if bad:
            raise UserError(f"--beta-schedule values must be in [0, 1], got {bad[0]}")
        return betas
    n = 10 if num_rounds is None else num_rounds
    if n <= 0:
        raise UserError(f"--rounds must be positive, got {n}")
    if schedule == "linear":
        return [1.0 - i / (n - 1) if n > 1 else 1.0 for i in range(n)]
    if schedule == "exponential":
        if not 0.0 <= beta_decay <= 1.0:
            raise UserError(f"--beta-decay must be in [0, 1], got {beta_decay}")
        return [beta_decay**i for i in range(n)]
    if schedule == "step":
        return [1.0] + [0.0] * (n - 1)
    if schedule == "constant":
        if not 0.0 <= beta <= 1.0:
            raise UserError(f"--beta must be in [0, 1], got {beta}")
        return [beta] * n
    raise UserError(f"unknown --beta-schedule '{schedule}'{suggest(schedule, SCHEDULES)}; "
                    f"use {', '.join(SCHEDULES)} or a comma list like 1,0.5,0")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
