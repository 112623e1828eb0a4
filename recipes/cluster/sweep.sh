#!/usr/bin/env bash
# A sweep on one machine, no scheduler: for each environment, one vmapped program of
# SEEDS seeds × the grid of its --sweep options, one environment after another.
#
#   recipes/cluster/sweep.sh
#   COMMAND=dagger ENVS="CartPole Pendulum" SEEDS=16 recipes/cluster/sweep.sh --sweep label_noise=0,0.1
#
# Extra arguments go to every il command. A user error (exit 2) or an interruption
# (130/143, the checkpoint kept) stops the sweep with that code; a failed environment
# (exit 1) is reported and the others still run; the script exits 1 if any failed.
# IL_DRY_RUN=1 prints the il commands instead of running them.
set -uo pipefail

COMMAND=${COMMAND:-bc}
read -r -a envs <<< "${ENVS:-CartPole Acrobot Pendulum}"
SEEDS=${SEEDS:-8}
run=${IL_DRY_RUN:+echo}
status=0
for env in "${envs[@]}"; do
    $run il "$COMMAND" --env "$env" --seeds "$SEEDS" --name sweep "$@"
    code=$?
    case $code in
        0) ;;
        2) echo "sweep: il refused the options for $env; nothing else was run" >&2; exit 2 ;;
        130|143) echo "sweep: interrupted during $env; its last checkpoint is kept" >&2; exit "$code" ;;
        *) echo "sweep: $env failed with exit code $code; going on" >&2; status=1 ;;
    esac
done
exit $status
