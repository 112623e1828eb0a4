"""A person ranks a language model's K answers per prompt in the terminal (`il rlhf --task
text --human`), in place of the simulated ranker. No JAX here.

The rankings file is an .npz (no pickle) of four arrays:
  `prompts` int32 [P, Tp]     the prompts' tokens
  `answers` int32 [P, K, Ta]  the K answers' tokens per prompt
  `order`   int32 [P, K]      the person's ranking, best first, as indices into the K
                              answers; all −1 unless ranked
  `status`  int8  [P]         0 not yet shown, 1 ranked, 2 skipped
It is rewritten atomically after every answer, so a session stopped in any way (q, Ctrl-C,
a kill, a closed terminal) loses nothing, and the next one resumes at the first prompt
not yet shown.
"""

import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
from rich.table import Table
from rich.text import Text

from il_cli import files, signals
from il_cli.data import Unreadable, open_npz, read_array
from il_cli.errors import UserError

UNSEEN, RANKED, SKIPPED = 0, 1, 2
MAX_K = 9  # an order is typed as one digit per answer
ARRAYS = {"prompts": (np.int32, 2), "answers": (np.int32, 3), "order": (np.int32, 2), "status": (np.int8, 1)}


def new_rankings(prompts, answers) -> dict:
    """Rankings of `answers` [P, K, Ta] to `prompts` [P, Tp], none ranked yet."""
    prompts, answers = np.asarray(prompts, np.int32), np.asarray(answers, np.int32)
    if prompts.ndim != 2 or answers.ndim != 3 or len(answers) != len(prompts):
        raise ValueError(f"prompts {prompts.shape} and answers {answers.shape} are not [P, Tp] and [P, K, Ta]")
    p, k = answers.shape[:2]
    if not 2 <= k <= MAX_K:
        raise UserError(f"--k {k}: a person ranks 2 to {MAX_K} answers per prompt (one digit each)")
    return {"prompts": prompts, "answers": answers, "order": np.full((p, k), -1, np.int32),
            "status": np.zeros(p, np.int8)}


def save_rankings(path, rankings: dict):
    """Write `rankings` to `path` atomically (the old file or the new one, never a torn one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic(path, "wb") as f:
        np.savez(f, **{name: np.asarray(rankings[name], dtype) for name, (dtype, _) in ARRAYS.items()})


def load_rankings(path, prompts=None, answers=None) -> dict:
    """The rankings at `path`, validated; with `prompts`/`answers`, also checked to be of
    those. UserError (one line naming the file) for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"rankings file {path} does not exist")
    try:
        with open_npz(path) as f:
            if set(f.files) != set(ARRAYS):
                raise UserError(f"{path} is not a rankings file: it holds {', '.join(sorted(f.files)) or 'nothing'}, "
                                f"not {', '.join(ARRAYS)}")
            r = {name: read_array(f, name) for name in ARRAYS}
    except Unreadable as exc:
        raise UserError(f"{path} is not a rankings file: {exc}") from None
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, zlib.error) as exc:
        reason = " ".join(str(exc).split())
        raise UserError(f"{path} is not a rankings file ({exc.__class__.__name__}: {reason})") from None
    for name, (dtype, ndim) in ARRAYS.items():
        if r[name].dtype != dtype or r[name].ndim != ndim:
            raise UserError(f"{path}: '{name}' is {r[name].dtype} with shape {r[name].shape}, "
                            f"expected {np.dtype(dtype)} with {ndim} dimensions")
    p, k = r["answers"].shape[:2]
    if len(r["prompts"]) != p or r["order"].shape != (p, k) or r["status"].shape != (p,):
        raise UserError(f"{path}: prompts {r['prompts'].shape}, answers {r['answers'].shape}, order "
                        f"{r['order'].shape} and status {r['status'].shape} disagree on P prompts and K answers")
    if not 2 <= k <= MAX_K:
        raise UserError(f"{path}: {k} answers per prompt, but a person ranks 2 to {MAX_K} (one digit each)")
    bad = np.flatnonzero(~np.isin(r["status"], (UNSEEN, RANKED, SKIPPED)))
    if len(bad):
        raise UserError(f"{path}: status of prompt {bad[0] + 1} is {r['status'][bad[0]]}, "
                        f"not 0 (not yet shown), 1 (ranked) or 2 (skipped)")
    ranked_ok = np.all(np.sort(r["order"], axis=1) == np.arange(k), axis=1)
    bad = np.flatnonzero(np.where(r["status"] == RANKED, ~ranked_ok, np.any(r["order"] != -1, axis=1)))
    if len(bad):
        i = bad[0]
        expected = f"a permutation of 0..{k - 1}" if r["status"][i] == RANKED else "all −1 (it is not ranked)"
        raise UserError(f"{path}: the order of prompt {i + 1} is {r['order'][i].tolist()}, not {expected}")
    for name, given in (("prompts", prompts), ("answers", answers)):
        if given is None or np.array_equal(r[name], given):
            continue
        given = np.asarray(given)
        if given.shape == r[name].shape:
            first = np.flatnonzero(np.any((r[name] != given).reshape(len(given), -1), axis=1))[0]
            detail = f"differ from these at prompt {first + 1}"
        else:
            detail = f"are {r[name].shape}, these {given.shape}"
        raise UserError(f"{path} holds rankings of other answers (its {name} {detail}); "
                        f"give --rankings a new file to rank these")
    return r


def check_rankings(path, num_prompts: int, k: int, will_rank: bool):
    """Before a run is made: the rankings file at `path` is valid, of `num_prompts` prompts
    with `k` answers each, and holds at least 2 rankings unless a person is about to rank
    (`will_rank`). Whether they are this run's prompts and answers is known only once the
    run has made them (load_rankings with them)."""
    path = Path(path)
    rankings = load_rankings(path)
    p, file_k = rankings["answers"].shape[:2]
    if (p, file_k) != (num_prompts, k):
        raise UserError(f"{path} holds rankings of {p} prompts with {file_k} answers each, not --num-prompts "
                        f"{num_prompts} with --k {k}; give --rankings a new file to rank these")
    index, _ = ranked(rankings)
    if not will_rank and len(index) < 2:
        raise UserError(f"{path} holds {len(index)} ranking(s); rank at least 2 (run again with --human "
                        f"--rankings {path} to go on where you stopped)")


def ranked(rankings: dict) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the ranked prompts, their orders [R, K]); skipped and unranked left out."""
    index = np.flatnonzero(rankings["status"] == RANKED)
    return index, rankings["order"][index]


def parse_order(text: str, k: int):
    """The order typed as `text` ("3142", "3 1 4 2", "3,1,4,2": answer numbers 1..k, best
    first) as indices into the answers; ValueError saying what is wrong otherwise."""
    typed = text.strip()
    digits = re.sub(r"[\s,]+", "", typed)
    example = "".join(map(str, range(k, 0, -1)))
    expected = f"expected each of 1..{k} once, best first, e.g. {example}"
    if not re.fullmatch(r"[0-9]+", digits):
        raise ValueError(f"'{typed}' is not an order; {expected}" if typed else expected)
    numbers = [int(c) for c in digits]
    outside = [n for n in numbers if not 1 <= n <= k]
    if outside:
        raise ValueError(f"'{typed}' has {outside[0]}, but the answers are numbered 1..{k}; {expected}")
    repeated = [n for n in dict.fromkeys(numbers) if numbers.count(n) > 1]
    if repeated:
        raise ValueError(f"'{typed}' names answer {repeated[0]} twice; {expected}")
    if len(numbers) != k:
        raise ValueError(f"'{typed}' ranks {len(numbers)} of the {k} answers; {expected}")
    return np.array(numbers, np.int32) - 1


def _show(console, rankings, i, render_prompt, render_answer):
    answers = rankings["answers"][i]
    console.print()
    console.rule(Text(f"prompt {i + 1}/{len(rankings['status'])}", style="bold"))
    console.print(Text(render_prompt(rankings["prompts"][i])))
    table = Table(show_header=False, show_lines=True)
    table.add_column(style="bold", justify="right")
    table.add_column()
    for j, row in enumerate(answers):
        table.add_row(Text(str(j + 1)), Text(render_answer(row)))
    console.print(table)


def _ask(console, k: int):
    """(RANKED, the order typed), (SKIPPED, no order) or None to stop; asks again until the
    answer is one of these."""
    while True:
        typed = console.input(Text(f"order of 1..{k}, best first (s skip, q stop): "))
        command = typed.strip().lower()
        if command == "q":
            return None
        if command == "s":
            return SKIPPED, np.full(k, -1, np.int32)
        try:
            return RANKED, parse_order(typed, k)
        except ValueError as exc:
            console.print(Text(str(exc), style="yellow"), soft_wrap=True)  # one line, however long


def rank_in_terminal(console, rankings: dict, render_prompt, render_answer, path) -> dict:
    """Ask the person at `console` to rank the answers to every prompt not yet shown, saving
    the rankings to `path` after each answer; returns them. q or end of input stop and
    return; Ctrl-C stops and raises KeyboardInterrupt (the command exits 130), SIGTERM raises
    too; either way all answered is saved first.
    `render_prompt` and `render_answer` turn a row of tokens into text."""
    rankings = {name: np.array(a) for name, a in rankings.items()}
    k = rankings["answers"].shape[1]
    interrupted = False
    try:
        with signals.handled():
            save_rankings(path, rankings)  # the answers to rank are kept even if none is ranked
            for i in np.flatnonzero(rankings["status"] == UNSEEN):
                _show(console, rankings, i, render_prompt, render_answer)
                choice = _ask(console, k)
                if choice is None:
                    break
                with signals.uninterrupted():  # a Ctrl-C now waits for the save
                    rankings["status"][i], rankings["order"][i] = choice
                    save_rankings(path, rankings)
    except (KeyboardInterrupt, EOFError) as exc:
        console.print()
        interrupted = isinstance(exc, KeyboardInterrupt)
    status = rankings["status"]
    console.print(f"ranked {np.sum(status == RANKED)}, skipped {np.sum(status == SKIPPED)}, "
                  f"left {np.sum(status == UNSEEN)} of {len(status)} — saved to {path}",
                  markup=False, highlight=False, soft_wrap=True)
    if interrupted:
        raise KeyboardInterrupt
    return rankings
