"""Every metric a trial logs, by name: the one vocabulary of the trial loop, the tuning stage and the report.

As Ray Tune keeps its result keys in `tune/result.py`: a key is written here once and imported everywhere
else, so that renaming a metric cannot silently break the report (`tests/test_structure.py` greps the
package for metric names written as literals elsewhere). Imports nothing of vaderbench: the bottom of the
import graph. The seconds per phase, `time_<phase>_s`, are named from the phases by `vaderbench.timing`.
"""

# -- a training step (the aligner's `step`) ------------------------------------------------------------
#: mean reward of the step's training videos, over all workers
REWARD_MEAN = "reward_mean"
#: population std of the step's training rewards
REWARD_STD = "reward_std"
#: the method's training loss of the step (VADER: minus the mean reward; PPO: the clipped surrogate)
LOSS = "loss"
#: VADER's gradient norm before clipping
GRAD_NORM = "grad_norm"
#: the method's loss without its KL penalty (GRPO, DDPO: the clipped PPO term; NFT: its policy term)
POLICY_LOSS = "policy_loss"
#: the KL to the base model that `kl_coef` weights in `loss` (0 where kl_coef is 0: not computed). GRPO, DDPO:
#: the Gaussian KL of the trained steps, mean over elements and steps; VADER: that of the steps with gradient,
#: summed over elements and steps, mean over samples; NFT: the squared velocity difference, mean over elements
KL = "kl"
#: PPO's approximate KL from the sampling policy: mean of (log p - log p_old)^2 / 2
APPROX_KL = "approx_kl"
#: share of PPO ratios outside the clip range
CLIPFRAC = "clipfrac"
#: mean PPO ratio p / p_old
RATIO_MEAN = "ratio_mean"
#: mean absolute advantage of the step's samples (after clipping)
ADVANTAGE_ABS_MEAN = "advantage_abs_mean"
#: DPO's optimiser updates in the round (an update with too few pairs is skipped)
UPDATES = "updates"
#: DPO's share of pairs its implicit reward ranks as the reward model does
IMPLICIT_ACC = "implicit_acc"

# -- the ledger and the clock (every step) -------------------------------------------------------------
#: videos scored for training so far (evaluation not counted), over all workers
REWARD_QUERIES = "reward_queries"
#: videos sampled for training so far
SAMPLES = "samples"
#: optimiser updates so far
OPTIMIZER_STEPS = "optimizer_steps"
#: wall-clock seconds of the trial's loop so far
WALL_TIME = "wall_time_s"
#: every worker's seconds in the steps, summed (device-seconds)
DEVICE_TIME = "device_time_s"
#: peak memory of a worker so far, MiB (CUDA's allocator peak on a GPU, the peak resident set on a CPU)
PEAK_MEMORY = "peak_memory_mb"
#: seconds of a trial's run outside its loop (imports, model loading), logged once when it completes
STARTUP_TIME = "startup_s"
#: 1.0 at the last step of a trial that ran to its budget or to its `stopping` rule (a trial stopped by the
#: tuning stage's scheduler, or failed, never logs it)
BUDGET_SPENT = "budget_spent"
#: the step at which a trial with a `stopping` rule ended (by its rule, or at its budget), logged once at that step
STOPPED_AT_STEP = "stopped_at_step"
#: the step of the evaluation whose LoRA weights a trial with a `stopping` rule kept (its last evaluation's)
BEST_STEP = "best_step"

# -- an evaluation (step 0, every eval.every steps, the last step) --------------------------------------
#: mean reward of the evaluation videos (held-out prompts, the same noise for every trial)
EVAL_REWARD_MEAN = "eval_reward_mean"
#: population std of the evaluation rewards
EVAL_REWARD_STD = "eval_reward_std"
#: mean of `eval.reference_reward` on the same videos: one learned-reward axis for variants trained on different
#: rewards (a defence's conservative ensemble beside the plain reward)
EVAL_REFERENCE_REWARD_MEAN = "eval_reference_reward_mean"
#: mean of `eval.held_out_reward` on the same videos: a reward no entry trains on (the truth's stand-in off the toy
#: world)
EVAL_HELD_OUT_REWARD_MEAN = "eval_held_out_reward_mean"
#: the metric of each of `eval`'s scoring rewards, by its key
EVAL_SCORING_REWARD_MEANS = {
    "reference_reward": EVAL_REFERENCE_REWARD_MEAN,
    "held_out_reward": EVAL_HELD_OUT_REWARD_MEAN,
}
#: the toy world's gold reward of the evaluation videos, mean
EVAL_GOLD_MEAN = "eval_gold_mean"
#: the toy world's caption fidelity of the evaluation videos: mean over its attributes
EVAL_FIDELITY = "eval_fidelity"
#: prefix of the caption fidelity of one attribute (`eval_fidelity_colour`, ...)
EVAL_FIDELITY_PREFIX = "eval_fidelity_"
#: what the tuning stage ranks settings by: the evaluation reward folded at the oracle's (`tuning_score`)
TUNING_SCORE = "eval_tuning_score"
#: summed per-step Gaussian KL of the policy's denoising means from the base model's along the evaluation trajectory
EVAL_KL = "eval_kl"
#: spread (std) across a reward ensemble's members, mean over evaluation videos
EVAL_REWARD_STD_MEMBERS = "eval_reward_std_members"


def at_lora_scale(metric: str, scale: float) -> str:
    """An evaluation metric of the adapter scaled by `scale` (`eval.lora_scales`, DRaFT): `eval_reward_mean_lora0.5`.
    Scale 1 is the trial's own evaluation, under the plain names (MLflow admits no `@` in a metric's name)."""
    return f"{metric}_lora{scale:g}"


# -- the headroom (step 0, toy world) ------------------------------------------------------------------
#: the reward of chance videos of the evaluation prompts (another caption's render, or a random scene)
EVAL_CHANCE_REWARD = "eval_chance_reward"
#: the reward of oracle videos of the evaluation prompts (the reference video the reward declares best)
EVAL_ORACLE_REWARD = "eval_oracle_reward"
#: the gold reward of the chance videos
EVAL_CHANCE_GOLD = "eval_chance_gold"
#: the gold reward of the oracle videos
EVAL_ORACLE_GOLD = "eval_oracle_gold"


# -- a reward fitted on the base model's videos (a standardised ensemble), logged at step 0 --------------
def base_fit_metrics(fits: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """`base_<reward key>_<statistic><i>`: each statistic of each fitted reward (`TrialLoop.fit_rewards_to_base`),
    one value per member i: `base_reward_mean0`, `base_reward_std0`, ..."""
    return {
        f"base_{key}_{statistic}{i}": value
        for key, fit in fits.items()
        for statistic, values in fit.items()
        for i, value in enumerate(values)
    }
