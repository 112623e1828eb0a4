"""A run's Orbax checkpoints (RUN_DIR/checkpoints/<step>/): saved after every chunk of
training, restored to continue a run bit for bit or read as plain arrays by `il eval`."""

import logging
import sys
import warnings

from il_cli.errors import UserError


class Checkpointed:
    """The checkpoints of a run directory (il_cli.runs.Run); `self.path` is the run's."""

    _manager = None

    @property
    def checkpoints(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            self._manager = ocp.CheckpointManager(
                (self.path / "checkpoints").absolute(),
                options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
        return self._manager

    def save(self, step: int, state):
        import orbax.checkpoint as ocp

        self.checkpoints.save(step, args=ocp.args.StandardSave(state))

    def wait(self):
        if self._manager is not None:
            self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        if not (self.path / "checkpoints").is_dir():
            return None
        return self.checkpoints.latest_step()

    def restore(self, target, step: int | None = None):
        """The checkpoint at `step` (default latest) with the structure of `target`."""
        import jax
        import orbax.checkpoint as ocp

        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.path} has no checkpoint to restore")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        _quiet_abandoned_reads()
        return self.checkpoints.restore(step, args=ocp.args.StandardRestore(abstract))

    def continue_from_checkpoint(self, state):
        """(state, step): the latest checkpoint restored into `state`'s structure, with the
        metrics logged after it dropped; or (state, 0) for a run with no checkpoint yet."""
        step = self.latest_step()
        if step is None:
            return state, 0
        self.truncate_metrics(step)
        return self.restore(state, step), step

    def restore_raw(self, step: int | None = None):
        """The latest checkpoint as nested dicts of arrays (no target structure needed), on
        this process's first device whatever devices it was saved from (so every process of
        a --distributed run can read an expert saved by one)."""
        import jax
        import orbax.checkpoint as ocp

        self.require_one_program()
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.path} has no checkpoint; was the run interrupted before "
                            f"its first chunk finished?")
        path = (self.path / "checkpoints" / str(step) / "default").absolute()
        _quiet_abandoned_reads()
        with ocp.StandardCheckpointer() as checkpointer:
            tree = ocp.StandardCheckpointHandler().metadata(path).tree
            local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            return checkpointer.restore(path, jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local), tree))




def _quiet_abandoned_reads():
    """Before reading a checkpoint: when an Orbax read fails (a corrupt checkpoint), its other
    tensorstore reads are abandoned. Their coroutines are collected unstarted ("coroutine ...
    was never awaited") or with their own errors unretrieved, their tasks and futures die with
    exceptions nobody awaited ("Task exception was never retrieved", logged by asyncio), some
    complete after Orbax's loop has closed ("RuntimeError: Event loop is closed"). Each would
    print a traceback or warning around our one error line (the failure itself is raised and
    reported); those, and only those, are dropped. il runs no asyncio of its own: Orbax's only."""
    sys.unraisablehook = _drop_abandoned_read
    warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)
    asyncio_log = logging.getLogger("asyncio")
    if _drop_unretrieved_exception not in asyncio_log.filters:
        asyncio_log.addFilter(_drop_unretrieved_exception)


def _drop_abandoned_read(unraisable):
    closed_loop = isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"
    code = getattr(unraisable.object, "cr_code", None)
    abandoned_read = code is not None and "/orbax/" in code.co_filename.replace("\\", "/")
    if not (closed_loop or abandoned_read):
        sys.__unraisablehook__(unraisable)


def _drop_unretrieved_exception(record) -> bool:
    return not record.getMessage().partition("\n")[0].endswith(" exception was never retrieved")
