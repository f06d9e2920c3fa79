"""One trial: build the policy, reward and aligner of a sweep point, then step, evaluate, report, checkpoint.

    restore the latest checkpoint of the trial's store, if it has one
    fit the rewards that are fitted on the base model's videos (a standardised ensemble), unless restored
    evaluate on the held-out prompts (step 0, before any update; the start GIF)
    until the budget is spent (steps, reward queries or wall time):
        choose this step's training prompts (from the trial seed and the step: resume-proof)
        metrics = aligner.step(prompts)
        every eval.every steps (or each time the reward queries reach a multiple of eval.every_queries) and at
        the end: evaluate on the held-out prompts (at each LoRA scale of eval.lora_scales)
        with a `stopping` rule, at each evaluation: the rule judges it (keeping a copy of the LoRA weights of the
        evaluation it keeps); once it says stop, or at the budget's end, restore the kept weights and evaluate
        them again: the trial's last evaluation is the kept checkpoint's
        every checkpoint.every steps and at the end: checkpoint the aligner's state into the store
        report the step's metrics (with the checkpoint's path when one was written)
    the end GIF and the LoRA weights go into the last checkpoint's `artifacts/`

Every worker runs this loop on the same global batch (`vaderbench.aligner`); rank 0 writes files. The
loop knows nothing of Ray: `report(metrics)` is Ray Tune's or Ray Train's report under a sweep, a list in
tests. The time of every step is accounted for by phase (`vaderbench.timing`): the aligner's own phases,
evaluation, and logging (reporting and checkpointing).
"""

from __future__ import annotations

import importlib
import json
import math
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vaderbench import distributed
from vaderbench.aligner import Aligner, build_aligner
from vaderbench.experiment.grid import Trial
from vaderbench.experiment.tuning import VALIDATION, tuning_score
from vaderbench.metrics import (
    BEST_STEP,
    BUDGET_SPENT,
    DEVICE_TIME,
    EVAL_CHANCE_GOLD,
    EVAL_CHANCE_REWARD,
    EVAL_FIDELITY,
    EVAL_FIDELITY_PREFIX,
    EVAL_GOLD_MEAN,
    EVAL_KL,
    EVAL_ORACLE_GOLD,
    EVAL_ORACLE_REWARD,
    EVAL_REWARD_MEAN,
    EVAL_REWARD_STD,
    EVAL_REWARD_STD_MEMBERS,
    EVAL_SCORING_REWARD_MEANS,
    OPTIMIZER_STEPS,
    PEAK_MEMORY,
    REWARD_QUERIES,
    SAMPLES,
    STOPPED_AT_STEP,
    TUNING_SCORE,
    WALL_TIME,
    at_lora_scale,
    base_fit_metrics,
)
from vaderbench.policy import Policy, SamplerSettings
from vaderbench.prompts import load_prompts
from vaderbench.registry import MODELS
from vaderbench.rewards.base import Reward, build_reward, shared_rewards
from vaderbench.runner.artifacts import export_lora, save_gif
from vaderbench.runner.checkpoint import CheckpointStore, load_checkpoint, save_checkpoint
from vaderbench.seeding import derive_seed
from vaderbench.stopping import StoppingRule

Report = Callable[[dict[str, Any]], None]
ARTIFACTS = "artifacts"
HISTORY = "history.json"
#: a checkpoint's copy of the LoRA weights the `stopping` rule keeps so far (so that a resumed trial keeps them)
KEPT_LORA = "kept_lora.safetensors"
#: the key of a report that carries earlier steps' reports again (after a restore)
REPLAY = "replay"
#: the key of a report that names the checkpoint written at its step
CHECKPOINT_PATH = "checkpoint_path"
#: the key of a report that ends the trial as failed, naming what went wrong (a deterministic failure: a
#: retry would fail the same way, so the trial stops instead of raising into Tune's retries)
TRIAL_ERROR = "trial_error"
#: the key of the first report of every attempt that names the machine (Ray node) of each worker, by rank
WORKER_NODES = "worker_nodes"
#: seconds this process has spent in the loop so far (steps, evaluations, logging): what a trial's run
#: lasted beyond it is its start-up
LOOP_TIME = "loop_time_s"


@dataclass
class Progress:
    """What a checkpoint holds besides the aligner's state: where the trial is and what it has spent."""

    step: int = 0
    wall_time_s: float = 0.0
    device_time_s: float = 0.0
    #: seconds per phase (`vaderbench.timing.PHASES`)
    phases: dict[str, float] = field(default_factory=dict)
    #: the `stopping` rule's state (`StoppingRule` as a dict), where the trial has one
    stopping: dict[str, Any] | None = None
    #: the fit of each reward fitted on the base model's videos (`TrialLoop.fit_rewards_to_base`), by its key
    base_fits: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def build_trial_aligner(trial: Trial, device: torch.device) -> Aligner:
    for module in trial.modules:
        importlib.import_module(module)
    model = MODELS.get(trial.model_name)(**trial.model_options).to(device)
    policy = Policy(model, **trial.policy.model_dump(), lora_seed=derive_seed(trial.seed, "lora"))
    reward = build_reward(trial.reward, device)
    return build_aligner(
        trial.aligner,
        policy,
        reward,
        trial.settings,
        frames=trial.frames,
        height=trial.height,
        width=trial.width,
        seed=trial.seed,
    )


def toy_judge(reward, prompts: list[str]):
    """The toy world's judge of a trial's evaluation videos, when its reward is a toy reward."""
    if not hasattr(reward, "gold"):
        return None
    from vaderbench.toyworld.judge import ToyJudge

    return ToyJudge.of(reward, prompts)


def eval_set(trial: Trial) -> tuple[list[str], list[int]]:
    """The held-out prompts and noise seeds: from the eval seed alone, so every trial sees the same.

    The final evaluation takes the first `videos` prompts of a fixed shuffle of the held-out set; tuning
    trials (split "validation") the `videos` after those, with their own noise.
    """
    prompts = load_prompts(trial.prompts.eval)
    random.Random(derive_seed(trial.eval.seed, "eval-prompts")).shuffle(prompts)
    count = trial.eval.videos
    split = trial.eval.split
    offset = count if split == VALIDATION else 0
    chosen = [prompts[(offset + i) % len(prompts)] for i in range(count)]
    noise = "eval-noise" if split == "test" else f"eval-noise-{split}"
    return chosen, [derive_seed(trial.eval.seed, noise, i) for i in range(count)]


def base_set(trial: Trial, count: int) -> tuple[list[str], list[int]]:
    """The training prompts and noise seeds of the base model's videos a reward is fitted on (`Reward.base_videos`):
    from the eval seed alone, so every trial of a study fits its rewards on the same videos."""
    prompts = load_prompts(trial.prompts.train)
    random.Random(derive_seed(trial.eval.seed, "base-fit-prompts")).shuffle(prompts)
    chosen = [prompts[i % len(prompts)] for i in range(count)]
    return chosen, [derive_seed(trial.eval.seed, "base-fit-noise", i) for i in range(count)]


def train_batch(prompts: list[str], count: int, seed: int, step: int) -> list[str]:
    """The distinct prompts of step `step` (a function of the seed and the step, so a resumed run picks the same)."""
    rng = random.Random(derive_seed(seed, "train-prompts", step))
    if count <= len(prompts):
        return rng.sample(prompts, count)
    return [rng.choice(prompts) for _ in range(count)]


def peak_memory_mb(device: torch.device) -> float:
    """Peak device memory of this process: CUDA's allocator peak, or the peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def not_finite(metrics: dict[str, float]) -> tuple[str, float] | None:
    """The first metric that is NaN or infinite (a reward or loss that broke), if any."""
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            return key, value
    return None


def budget_spent(trial: Trial, progress: Progress, reward_queries: float) -> bool:
    budget = trial.budget
    return (
        (budget.steps is not None and progress.step >= budget.steps)
        or (budget.reward_queries is not None and reward_queries >= budget.reward_queries)
        or (budget.wall_time_s is not None and progress.wall_time_s >= budget.wall_time_s)
    )


class TrialLoop:
    def __init__(
        self,
        trial: Trial,
        store: CheckpointStore,
        device: torch.device | str = "cpu",
        scratch: Path | None = None,
        node: str | None = None,
    ):
        self.trial, self.store, self.device = trial, store, torch.device(device)
        #: the machine this worker runs on (a Ray node id), reported for every worker on an attempt's start
        self.node = node
        with shared_rewards():  # one copy of each reward model, however many of the trial's specs name it
            self.aligner = build_trial_aligner(trial, self.device)
            #: the rewards besides the trial's own that score its evaluation videos, by their `eval` key
            self.scoring_rewards = {
                key: build_reward(spec, self.device) for key, spec in trial.eval.scoring_rewards().items()
            }
        self.clock = self.aligner.clock
        self.train_prompts = load_prompts(trial.prompts.train)
        self.eval_prompts, self.eval_seeds = eval_set(trial)
        self.eval_sampler = SamplerSettings(**trial.eval_sampler.model_dump())
        self.judge = toy_judge(self.aligner.reward, self.eval_prompts)
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="vaderbench-trial-"))
        self.progress = Progress()
        #: every report so far; checkpoints carry it, so that a resumed trial can replay the reports of
        #: steps up to its checkpoint that never reached the tracker (an interruption races the delivery)
        self.history: list[dict[str, float]] = []
        self.stopping = StoppingRule(**trial.stopping.model_dump()) if trial.stopping is not None else None
        #: the LoRA weights of the evaluation the stopping rule keeps
        self.kept_lora: dict[str, torch.Tensor] | None = None

    @property
    def writer(self) -> bool:
        return distributed.rank() == 0

    def base_fitted(self) -> dict[str, Reward]:
        """The trial's rewards (and their parts) fitted on the base model's videos, by key: `reward` for the trial's
        reward, `reward.<module>` for a part of it, `reference_reward...` for `eval.reference_reward`'s."""
        rewards = {"reward": self.aligner.reward, **self.scoring_rewards}
        return {
            ".".join(filter(None, (role, name))): module
            for role, reward in rewards.items()
            for name, module in reward.named_modules()
            if getattr(module, "base_videos", 0)
        }

    @torch.no_grad()
    def fit_rewards_to_base(self) -> dict[str, dict[str, list[float]]]:
        """Fit each reward of `base_fitted` on its `base_videos` videos of the adapters-off policy (`base_set`,
        sampled with the file's sampler in batches of an evaluation's size): the fits, by key.

        Every worker samples the same videos and rank 0's fits are kept, so that every worker's reward is the same.
        """
        fitted = self.base_fitted()
        if not fitted:
            return {}
        trial, policy = self.trial, self.aligner.policy
        prompts, seeds = base_set(trial, max(module.base_videos for module in fitted.values()))
        width = max(1, trial.eval.videos // trial.workers)
        scores = {key: [] for key in fitted}
        with self.clock.phase("evaluate"), policy.lora_scale(0.0):
            for start in range(0, len(prompts), width):
                batch = slice(start, start + width)
                trajectory = policy.sample(
                    prompts[batch],
                    seeds[batch],
                    self.eval_sampler,
                    frames=trial.frames,
                    height=trial.height,
                    width=trial.width,
                )
                videos = policy.decode(trajectory.final)
                for key, module in fitted.items():
                    scores[key].append(module.base_scores(videos, prompts[batch]))
        fits = {
            key: module.fit_to_base(torch.cat(scores[key], dim=-1)[..., : module.base_videos])
            for key, module in fitted.items()
        }
        fits = distributed.gather_objects(fits)[0]
        self.load_base_fits(fits)
        return fits

    def load_base_fits(self, fits: dict[str, dict[str, list[float]]]) -> None:
        fitted = self.base_fitted()
        for key, fit in fits.items():
            fitted[key].load_base_fit(fit)
        self.progress.base_fits = fits

    def evaluate(self, gif_name: str | None = None) -> dict[str, float]:
        """The held-out reward of the evaluation videos (and, in the toy world, their gold and caption
        fidelity); with `gif_name`, the first `eval.sample_videos` of them as a GIF with their values."""
        with self.clock.phase("evaluate"):
            evaluation = self.aligner.evaluate_videos(self.eval_prompts, self.eval_seeds, self.eval_sampler)
            rewards, videos = evaluation.rewards, evaluation.videos
            per_video = {"reward": rewards}
            if self.judge is not None:
                measured = self.judge.measure(videos, distributed.shard(self.eval_prompts))
                per_video |= {key: distributed.gather(value) for key, value in measured.items()}
            if gif_name:
                self.save_samples(gif_name, videos, per_video)
        metrics = {EVAL_REWARD_MEAN: float(rewards.mean()), EVAL_REWARD_STD: float(rewards.std(unbiased=False))}
        for key, reward in self.scoring_rewards.items():
            with torch.no_grad():
                scores = reward(videos, distributed.shard(self.eval_prompts))
            metrics[EVAL_SCORING_REWARD_MEANS[key]] = float(distributed.gather(scores).mean())
        if evaluation.kl is not None:
            metrics[EVAL_KL] = float(evaluation.kl.mean())
        if evaluation.member_spread is not None:
            metrics[EVAL_REWARD_STD_MEMBERS] = float(evaluation.member_spread.mean())
        if self.judge is not None:
            metrics[EVAL_GOLD_MEAN] = float(per_video["gold"].mean())
            fidelity = {
                k.removeprefix("fidelity_"): float(v.mean()) for k, v in per_video.items() if k.startswith("fidelity_")
            }
            metrics |= {f"{EVAL_FIDELITY_PREFIX}{k}": v for k, v in fidelity.items()}
            metrics[EVAL_FIDELITY] = sum(fidelity.values()) / len(fidelity)
        return metrics

    def evaluate_at_scales(self, gif_name: str | None = None) -> dict[str, float]:
        """`evaluate` of the trained adapter, then of the adapter scaled by each other `eval.lora_scales` (DRaFT's
        interpolation toward the base model), the same metrics under `at_lora_scale` names; GIFs at scale 1 only."""
        metrics = self.evaluate(gif_name)
        for scale in self.trial.eval.lora_scales:
            if scale != 1.0:
                with self.aligner.policy.lora_scale(scale):
                    metrics |= {at_lora_scale(key, scale): value for key, value in self.evaluate().items()}
        return metrics

    def scored_evaluation(self, gif_name: str | None = None) -> dict[str, float]:
        """`evaluate_at_scales` with the tuning score of its reward (folded at step 0's oracle)."""
        metrics = self.evaluate_at_scales(gif_name)
        metrics[TUNING_SCORE] = tuning_score(metrics[EVAL_REWARD_MEAN], self.oracle())
        return metrics

    def save_samples(self, name: str, videos: torch.Tensor, per_video: dict[str, torch.Tensor]) -> None:
        """`samples/<name>.gif` and `samples/<name>.json` (each video's prompt and values), on rank 0."""
        count = min(self.trial.eval.sample_videos, len(videos))
        if not (self.writer and count):
            return
        folder = self.scratch / ARTIFACTS / "samples"
        save_gif(videos[:count], folder / f"{name}.gif")
        values = [
            {"prompt": prompt, **{k: float(v[i]) for k, v in per_video.items()}}
            for i, prompt in enumerate(self.eval_prompts[:count])
        ]
        (folder / f"{name}.json").write_text(json.dumps(values, indent=2) + "\n")

    def headroom(self) -> dict[str, float]:
        """The reward and gold of chance and oracle videos of the evaluation prompts (toy world, square frames),
        and the oracle's sample GIF."""
        trial = self.trial
        if self.judge is None or trial.height != trial.width:
            return {}
        with self.clock.phase("evaluate"):
            seed = trial.eval.seed
            room = self.judge.headroom(self.eval_prompts, trial.frames, trial.height, seed)
            if room:
                oracle = self.judge.oracle_videos(self.eval_prompts, trial.frames, trial.height, seed)
                with torch.no_grad():
                    reward = self.aligner.reward(oracle.to(self.device), self.eval_prompts)
                    gold = self.aligner.reward.gold(oracle.to(self.device), self.eval_prompts)
                self.save_samples("oracle", oracle, {"reward": reward, "gold": gold})
        logged = {
            "chance": EVAL_CHANCE_REWARD,
            "gold_chance": EVAL_CHANCE_GOLD,
            "oracle": EVAL_ORACLE_REWARD,
            "gold_oracle": EVAL_ORACLE_GOLD,
        }
        return {metric: room[key] for key, metric in logged.items() if key in room}

    def oracle(self) -> float | None:
        """The oracle's reward on the evaluation prompts, from step 0 (kept in the history a checkpoint carries)."""
        return next((h[EVAL_ORACLE_REWARD] for h in self.history if EVAL_ORACLE_REWARD in h), None)

    def checkpoint(self, final: bool) -> Path | None:
        """A new checkpoint in the store, written by rank 0 (None elsewhere); the artifacts so far travel inside it."""
        if not self.writer:
            return None
        if final:
            export_lora(self.aligner.policy, self.scratch / ARTIFACTS / "lora")
        self.progress.phases = dict(self.clock.seconds)
        self.progress.stopping = asdict(self.stopping) if self.stopping is not None else None
        return self.store.save(self.progress.step, self._write_checkpoint)

    def _write_checkpoint(self, directory: Path) -> None:
        save_checkpoint(directory, self.aligner, asdict(self.progress))
        if self.kept_lora is not None:
            save_file({k: v.contiguous() for k, v in self.kept_lora.items()}, str(directory / KEPT_LORA))
        (directory / HISTORY).write_text(json.dumps(self.history))
        if (self.scratch / ARTIFACTS).is_dir():
            shutil.copytree(self.scratch / ARTIFACTS, directory / ARTIFACTS)

    def restore(self, directory: Path) -> None:
        self.progress = Progress(**load_checkpoint(directory, self.aligner))
        self.clock.seconds.update(self.progress.phases)
        self.history = json.loads((directory / HISTORY).read_text())
        self.load_base_fits(self.progress.base_fits)
        if self.progress.stopping is not None:
            self.stopping = StoppingRule(**self.progress.stopping)
            self.kept_lora = load_file(str(directory / KEPT_LORA), device=str(self.aligner.policy.model.device))
        if (directory / ARTIFACTS).is_dir():
            shutil.copytree(directory / ARTIFACTS, self.scratch / ARTIFACTS, dirs_exist_ok=True)

    def keep_if_best(self, metrics: dict[str, float]) -> None:
        """The stopping rule judges this evaluation; the LoRA weights of one it keeps are copied."""
        if self.stopping.keeps(self.progress.step, metrics[self.stopping.metric]):
            self.kept_lora = self.aligner.policy.lora_state_dict()

    def end_on_kept(self) -> dict[str, float]:
        """The kept weights restored and evaluated again (the end GIF too), unless they are those just evaluated:
        the trial's last evaluation, the one tuning and the report read, is then theirs; and where it stopped."""
        step, best_step = self.progress.step, self.stopping.best_step
        ended = {STOPPED_AT_STEP: float(step), BEST_STEP: float(best_step)}
        if best_step == step:
            return ended
        self.aligner.policy.load_lora_state_dict(self.kept_lora)
        return self.scored_evaluation("end") | ended

    def ledger_metrics(self) -> dict[str, float]:
        ledger = self.aligner.ledger
        return {
            REWARD_QUERIES: float(ledger.reward_queries),
            SAMPLES: float(ledger.samples),
            OPTIMIZER_STEPS: float(ledger.optimizer_steps),
            WALL_TIME: self.progress.wall_time_s,
            DEVICE_TIME: self.progress.device_time_s,
            PEAK_MEMORY: distributed.max_over_workers(peak_memory_mb(self.device)),
            **self.clock.metrics(),
        }

    def run(self, report: Report) -> None:
        trial, every_checkpoint = self.trial, self.trial.checkpoint.every
        started = time.perf_counter()
        nodes = distributed.gather_objects(self.node)
        attempt = {WORKER_NODES: nodes} if self.node is not None else {}
        latest = self.store.latest()
        if latest is not None:
            self.restore(latest)
            # the tracker logs the replayed steps it has not seen yet, and skips the others
            report({"step": self.progress.step, REPLAY: list(self.history), CHECKPOINT_PATH: str(latest), **attempt})
            attempt = {}
        clock = time.perf_counter() - self.progress.wall_time_s

        def wall_time() -> float:
            return distributed.max_over_workers(time.perf_counter() - clock)

        if self.progress.step == 0:
            try:
                fits = self.fit_rewards_to_base()
            except ValueError as error:
                report({"step": 0, TRIAL_ERROR: f"{trial.method}: {error}"})
                return
            # the base model, before any update: step 0 of every curve, with nothing spent
            metrics = {**self.evaluate_at_scales("start"), **self.headroom(), **base_fit_metrics(fits)}
            metrics[TUNING_SCORE] = tuning_score(metrics[EVAL_REWARD_MEAN], metrics.get(EVAL_ORACLE_REWARD))
            if self.stopping is not None:
                if self.stopping.metric not in metrics:
                    error = f"stopping.on: {self.stopping.on}: this trial's evaluation logs no {self.stopping.metric}"
                    report({"step": 0, TRIAL_ERROR: f"{trial.method}: {error}"})
                    return
                self.keep_if_best(metrics)
            self.progress.wall_time_s = wall_time()
            metrics |= {**self.ledger_metrics(), "step": 0}
            self.history.append(metrics)
            with self.clock.phase("log"):
                report({**metrics, **attempt, LOOP_TIME: time.perf_counter() - started})
        done = budget_spent(trial, self.progress, self.aligner.ledger.reward_queries)
        done = done or (self.stopping is not None and self.stopping.stop)  # resumed after its rule said stop
        while not done:
            prompts = train_batch(self.train_prompts, self.aligner.prompts_per_step, trial.seed, self.progress.step)
            step_started = time.perf_counter()
            metrics = self.aligner.step(prompts)
            broken = not_finite(metrics)
            if broken:
                key, value = broken
                report(
                    {
                        "step": self.progress.step + 1,
                        TRIAL_ERROR: f"{trial.method}: step {self.progress.step + 1}: {key} is {value}",
                    }
                )
                return
            # device time: every worker's own time in the step, summed (device-hours on GPUs)
            self.progress.device_time_s += distributed.sum_over_workers(time.perf_counter() - step_started)
            self.progress.step += 1
            self.progress.wall_time_s = wall_time()
            done = budget_spent(trial, self.progress, self.aligner.ledger.reward_queries)
            if done or trial.evaluates_after(self.progress.step):
                metrics |= self.scored_evaluation("end" if done else None)
                if self.stopping is not None:
                    self.keep_if_best(metrics)
                    if done or self.stopping.stop:
                        done = True
                        metrics |= self.end_on_kept()
                self.progress.wall_time_s = wall_time()
            if done:
                # ran to its budget or its stopping rule: finished (one stopped by the tuning scheduler never logs it)
                metrics[BUDGET_SPENT] = 1.0
            metrics |= self.ledger_metrics()
            metrics["step"] = self.progress.step
            self.history.append(metrics)
            with self.clock.phase("log"):
                checkpoint = self.checkpoint(final=done) if done or self.progress.step % every_checkpoint == 0 else None
                path = {CHECKPOINT_PATH: str(checkpoint)} if checkpoint is not None else {}
                report({**metrics, **path, LOOP_TIME: time.perf_counter() - started})


def run_trial(
    trial: Trial | dict[str, Any],
    report: Report,
    store: CheckpointStore,
    device: torch.device | str = "cpu",
    node: str | None = None,
) -> None:
    """Run `trial` from the latest checkpoint in `store` (from the start if it has none)."""
    trial = trial if isinstance(trial, Trial) else Trial.from_dict(trial)
    with tempfile.TemporaryDirectory(prefix="vaderbench-trial-") as scratch:
        TrialLoop(trial, store, device, Path(scratch), node).run(report)
