"""The outer loop: chunking, non-finite losses, checkpoints kept."""

import jax
import jax.numpy as jnp
import pytest

from il_cli.loop import TrainingDiverged, chunk_length, run_chunks
from il_cli.runs import Run


@pytest.mark.parametrize("total,num_chunks,expected", [
    (128, 8, 16), (4000, 8, 500), (244, 8, 61), (7, 8, 1), (1, 8, 1), (10, 1, 10)])
def test_chunk_length_divides_total(total, num_chunks, expected):
    assert chunk_length(total, num_chunks) == expected
    assert total % expected == 0


class _Quiet:
    def update(self, *args):
        pass


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    members = [{"member": 0, "seed": 0, "cell": 0, "hyper": {}}]
    run = Run.create(tmp_path, "bc", "CartPole-v1", None, {"seed": 0}, {}, members)

    @jax.jit
    def chunk(state):  # the loss becomes NaN in the third chunk
        state = {"params": state["params"] + 1.0, "step": state["step"] + 1}
        loss = jnp.where(state["step"] >= 3, jnp.nan, 1.0 / state["step"])
        return state, loss

    state = {"params": jnp.zeros(3), "step": jnp.zeros((), jnp.int32)}
    with pytest.raises(TrainingDiverged, match="diverged at step 3"):
        run_chunks(state, chunk, total=5, chunk=1, start=0, run=run, progress=_Quiet(),
                   summarize=lambda step, loss, s: [{"loss": float(loss)}], members=members)
    run.wait()
    assert run.latest_step() == 2
    assert [r["step"] for r in run.metrics()] == [1, 2]
    restored = run.restore_raw()
    assert restored["params"].tolist() == [2.0, 2.0, 2.0]
    run.close()


def test_progress_lines_in_a_log_stay_short_and_whole():
    """With stdout not a terminal, progress is plain lines under 160 characters, cut between
    whole figures (RLHF logs a dozen of them)."""
    import io

    from rich.console import Console

    from il_cli.ui import LOG_LINE, Progress

    out = io.StringIO()
    figures = {f"figure_{i}": 1000.0 + i / 3 for i in range(30)}
    with Progress(Console(file=out, width=120), total=4, unit="update") as progress:
        progress.update(4, figures)
    line = out.getvalue().strip()
    assert line.startswith("update 4/4  figure_0 1000") and line.endswith("  …")
    assert len(line) <= LOG_LINE and "figure_29" not in line
