"""What a study's evaluations cost, estimated before anything starts.

An evaluation samples `eval.videos` held-out videos with the file's sampler, decodes and scores them; a
trial evaluates before its first step, every `eval.every` steps and after its last, each time once per LoRA
scale of `eval.lora_scales`. Their memory is part
of the trial's peak-memory estimate (`memory.evaluation_bytes`); their time is estimated here, for the
toy world, from its measured cost per frame-pixel and sampling step: a large `eval.videos` (or a small
`eval.every`) can cost more than the training itself, and used to show only once a run ground through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vaderbench.experiment.grid import Trial
from vaderbench.experiment.schema import ExperimentError
from vaderbench.rewards.base import base_videos_of

#: seconds of one evaluation per video, frame, pixel and sampling step (sampling, decoding, reward and the
#: toy world's gold) on one thread: `TrialLoop.evaluate` timed at 32 px, 8 frames, 10 steps, 8 and 16 videos,
#: 2.2 to 2.8 us on a 2-core AMD EPYC shared with other work (load 8 to 10); 16 and 64 px within 2x of it
TOY_SECONDS_PER_VOXEL_STEP = {"toy": 2.5e-6, "toy-flow": 2.5e-6}
#: one evaluation estimated longer than this is refused (`vaderbench run --force` runs it anyway)
MAX_EVALUATION_S = 600.0


def evaluations_per_trial(trial: Trial) -> int | None:
    """Before the first step, at every step it evaluates after and after the last, once at each of
    `eval.lora_scales`; None when only wall time limits it. With a `stopping` rule, at most one more: the kept
    weights' evaluation again at the end."""
    steps = trial.steps
    if steps is None:
        return None
    points = 1 + sum(trial.evaluates_after(step) or step == steps for step in range(1, steps + 1))
    points += trial.stopping is not None
    return points * len(trial.eval.lora_scales)


def evaluation_seconds(trial: Trial) -> float | None:
    """One evaluation's estimated seconds (its workers share the videos), or None off the toy world."""
    per_voxel_step = TOY_SECONDS_PER_VOXEL_STEP.get(trial.model_name)
    if per_voxel_step is None:
        return None
    videos = trial.eval.videos / trial.workers
    return videos * trial.eval_sampler.num_steps * trial.frames * trial.height * trial.width * per_voxel_step


def base_fit_videos(trial: Trial) -> int:
    """The base model's videos a trial samples before training to fit its rewards (a standardised ensemble's,
    `TrialLoop.fit_rewards_to_base`); every worker samples all of them."""
    return max(base_videos_of(spec) for spec in [trial.reward, *trial.eval.scoring_rewards().values()])


def describe_evaluations(trials: Sequence[Trial]) -> str:
    """One line: videos per evaluation, evaluations and videos in all (the rewards' base-model fits among them),
    and the time where it can be estimated."""
    counts = [evaluations_per_trial(t) for t in trials]
    videos = sorted({t.eval.videos for t in trials})
    line = f"evaluation: {'/'.join(map(str, videos))} video(s) per evaluation"
    if None in counts:
        return line + " (evaluations per trial unknown: the budget is not in steps)"
    fits = [base_fit_videos(t) for t in trials]
    total = sum(count * t.eval.videos + fit for count, t, fit in zip(counts, trials, fits))
    line += f", {sum(counts)} evaluation(s) of {len(trials)} trial(s), {total} videos in all"
    if any(fits):
        line += f" ({sum(fits)} of them the base model's, to fit the rewards)"
    seconds = [evaluation_seconds(t) for t in trials]
    if None in seconds:
        return line
    # a fit's videos cost what as many evaluation videos do, on every worker
    fit_seconds = [fit * s / t.eval.videos * t.workers for fit, s, t in zip(fits, seconds, trials)]
    minutes = sum(count * s + f for count, s, f in zip(counts, seconds, fit_seconds)) / 60
    return line + f"; about {minutes:.2g} min of one core (the toy world's measured cost, within 2x)"


def check_evaluation_time(trials: Sequence[Trial], path: str | Path) -> None:
    """ExperimentError for the first trial whose one evaluation is estimated above MAX_EVALUATION_S."""
    for trial in trials:
        seconds = evaluation_seconds(trial)
        if seconds is not None and seconds > MAX_EVALUATION_S:
            raise ExperimentError(
                path,
                "eval.videos",
                f"trial {trial.id}: one evaluation of {trial.eval.videos} videos ({trial.frames} frames at "
                f"{trial.height}x{trial.width}, {trial.eval_sampler.num_steps} steps) takes an estimated "
                f"{seconds / 60:.3g} min, more than {MAX_EVALUATION_S / 60:.3g}, and a trial makes "
                f"{evaluations_per_trial(trial) or 'several'}; lower eval.videos or raise eval.every, or "
                "`vaderbench run --force` to run it anyway",
            )
