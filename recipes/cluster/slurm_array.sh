#!/usr/bin/env bash
# One SLURM array task = one environment × one block of seeds, trained as one vmapped
# program (`il COMMAND --seeds N`). Task t runs environment t / BLOCKS with seeds
# (t % BLOCKS) * SEEDS_PER_TASK ... + SEEDS_PER_TASK - 1, so the array covers every
# environment with BLOCKS * SEEDS_PER_TASK seeds and no two tasks share a seed.
#
#   sbatch --array=0-11 recipes/cluster/slurm_array.sh                  # 3 envs × 4 blocks
#   COMMAND=dagger ENVS="Pendulum" BLOCKS=2 SEEDS_PER_TASK=16 \
#       sbatch --array=0-1 recipes/cluster/slurm_array.sh --sweep lr=1e-3,3e-4
#
# Extra arguments go to il. A requeued or preempted task finds its unfinished run
# directory and resumes it. Exit codes: 0 done, 2 user error, 1 failure, 130/143
# interrupted with the last checkpoint kept (SLURM sends SIGTERM before the time limit).
# IL_DRY_RUN=1 prints the il command instead of running it.
#
#SBATCH --job-name=il
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=il-%A_%a.log
set -euo pipefail

COMMAND=${COMMAND:-bc}
read -r -a envs <<< "${ENVS:-CartPole Acrobot Pendulum}"
BLOCKS=${BLOCKS:-4}
SEEDS_PER_TASK=${SEEDS_PER_TASK:-8}
task=${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-$(( ${#envs[@]} * BLOCKS - 1 )), or set SLURM_ARRAY_TASK_ID}

env_index=$(( task / BLOCKS ))
if (( env_index >= ${#envs[@]} )); then
    echo "error: array task $task is past ${#envs[@]} environments × $BLOCKS blocks" \
         "(use --array=0-$(( ${#envs[@]} * BLOCKS - 1 )))" >&2
    exit 2
fi
env=${envs[$env_index]}
seed=$(( task % BLOCKS * SEEDS_PER_TASK ))
run_dir="${IL_RUNS_DIR:-runs}/${COMMAND}-${env}-job${SLURM_ARRAY_JOB_ID:-local}-seeds${seed}-$(( seed + SEEDS_PER_TASK - 1 ))"

run=${IL_DRY_RUN:+echo}
if [[ -f "$run_dir/config.json" ]]; then
    exec $run il "$COMMAND" --resume "$run_dir"
fi
exec $run il "$COMMAND" --env "$env" --seed "$seed" --seeds "$SEEDS_PER_TASK" --run-dir "$run_dir" "$@"
