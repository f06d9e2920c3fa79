"""The `Aligner` interface and the mechanics every aligner shares.

An aligner performs one optimisation round from a global batch of prompts (`step`) and returns its
metrics. Shared here, written once: sampling with per-sample seeds, frame subsampling before the reward,
scoring with reward-query counting, the optimiser step (gradient averaging over workers, clipping,
AdamW), held-out evaluation, and exact save/restore of the aligner's state.

Batches are global: every worker calls `step` with the same prompts and handles its own shard, so N
workers compute what one process would with the same global batch and seeds.

Words: a *step* (training step) is one call of `step`, one round of sample, score and update: the step of
every logged metric, `budget.steps`, `eval.every`; a *denoising step* is one DDIM step of sampling
(`num_steps`, `Truncation`'s K); an *optimiser update* is one AdamW step (`optimizer_steps` on the ledger:
DDPO and DPO take several per training step).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

import torch

from vaderbench import distributed
from vaderbench.metrics import REWARD_MEAN, REWARD_STD
from vaderbench.policy import Policy, SamplerSettings, Trajectory
from vaderbench.registry import ALIGNERS
from vaderbench.rewards.base import Reward
from vaderbench.seeding import derive_seed
from vaderbench.timing import PhaseClock

#: how a method learns from the reward, in the report's order: it compares the reward-gradient method with the
#: best of the others
FAMILIES = ("reward-gradient", "policy-gradient", "preference")


@dataclass
class Evaluation:
    """Evaluation videos and what is measured of them (per video; gathered over workers but `videos`)."""

    rewards: torch.Tensor  # [B]
    videos: torch.Tensor  # [B_local, F, C, H, W] in [0, 1]: this worker's
    #: the policy's KL from the base model along each video's sampling path (None for a deterministic sampler)
    kl: torch.Tensor | None
    #: the standard deviation of a reward ensemble's members' scores (None for a reward without members)
    member_spread: torch.Tensor | None


@dataclass
class AlignerConfig:
    """Settings every aligner has. Subclasses add theirs and change defaults, citing their source."""

    lr: float = 2e-4
    #: videos sampled per `step`, over all workers
    batch_size: int = 4
    #: videos per forward/backward pass on one worker (a memory knob; None = the whole local shard)
    micro_batch_size: int | None = None
    #: copies of each prompt in a batch (DPO pairs and per-prompt statistics need groups)
    group_size: int = 1
    weight_decay: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    num_steps: int = 25
    eta: float = 1.0
    guidance_scale: float = 7.5
    #: frames decoded for the reward: "all", "alt" (every second frame) or n random frames per video
    decode_frames: Literal["all", "alt"] | int = "all"

    def validate(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for name in ("batch_size", "group_size", "num_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.group_size:
            raise ValueError(f"batch_size={self.batch_size} must be a multiple of group_size={self.group_size}")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1, got {self.micro_batch_size}")
        if self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm}")
        if not (
            self.decode_frames in ("all", "alt") or (isinstance(self.decode_frames, int) and self.decode_frames >= 1)
        ):
            raise ValueError(f"decode_frames must be 'all', 'alt' or a positive integer, got {self.decode_frames!r}")
        SamplerSettings(self.num_steps, self.eta, self.guidance_scale)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlignerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(values)
        if "adam_betas" in values:
            values["adam_betas"] = tuple(values["adam_betas"])
        return cls(**values)


@dataclass
class Ledger:
    """What an aligner has spent, counted over all workers: the axes of the efficiency comparisons."""

    reward_queries: int = 0
    samples: int = 0
    optimizer_steps: int = 0


class Aligner(ABC):
    #: the registered name (seeds are derived from it)
    name: ClassVar[str]
    #: the method's name in the report's tables and figures
    title: ClassVar[str]
    #: one of FAMILIES
    family: ClassVar[str]
    Config: ClassVar[type[AlignerConfig]] = AlignerConfig
    #: settings (over the tests' 6-step sampler) and rounds under which the method raises the reward of the tests'
    #: tiny toy model: the contract tests in tests/test_aligners.py run every registered aligner with its own
    contract_settings: ClassVar[dict[str, Any]] = {}
    contract_rounds: ClassVar[int] = 12

    def __init__(
        self,
        policy: Policy,
        reward: Reward,
        config: AlignerConfig | None = None,
        *,
        frames: int,
        height: int,
        width: int,
        seed: int = 0,
    ):
        self.config = config if config is not None else self.Config()
        self.config.validate()
        self.policy, self.reward = policy, reward
        self.frames, self.height, self.width = frames, height, width
        policy.model.latent_shape(frames, height, width)  # the model says early if it cannot take the size
        self.sampler = SamplerSettings(self.config.num_steps, self.config.eta, self.config.guidance_scale)
        if self._frames_scored() < reward.min_frames:
            raise ValueError(
                f"decode_frames={self.config.decode_frames!r} leaves {self._frames_scored()} frame(s) but the reward "
                f"needs at least {reward.min_frames}"
            )
        if self.config.batch_size % (distributed.world_size() * self.config.group_size):
            raise ValueError(
                f"batch_size={self.config.batch_size} must split into whole prompt groups over "
                f"{distributed.world_size()} worker(s)"
            )
        self.seed = seed
        self.rng = random.Random(derive_seed(seed, self.name, "rng"))
        self.ledger = Ledger()
        self.rounds = 0
        #: seconds per phase (sampling, reward, loss, backward, optimiser); the trial adds evaluation and logging
        self.clock = PhaseClock()
        self.optimizer = torch.optim.AdamW(
            policy.trainable_parameters(),
            lr=self.config.lr,
            betas=self.config.adam_betas,
            weight_decay=self.config.weight_decay,
        )

    # -- the interface ----------------------------------------------------------------------------
    @property
    def prompts_per_step(self) -> int:
        """How many distinct prompts `step` takes (each is repeated `group_size` times)."""
        return self.config.batch_size // self.config.group_size

    def step(self, prompts: Sequence[str]) -> dict[str, float]:
        """One round: sample, score, update. `prompts` is the global batch of distinct prompts."""
        if len(prompts) != self.prompts_per_step:
            raise ValueError(f"{self.name} takes {self.prompts_per_step} prompts per step, got {len(prompts)}")
        batch = [p for p in prompts for _ in range(self.config.group_size)]
        metrics = self._round(batch)
        self.rounds += 1
        return {**metrics, **{k: float(v) for k, v in asdict(self.ledger).items()}}

    @abstractmethod
    def _round(self, prompts: list[str]) -> dict[str, float]:
        """The algorithm, given the global batch with prompt groups already repeated."""

    # -- shared mechanics -------------------------------------------------------------------------
    def sample_seeds(self, count: int, purpose: str = "train") -> list[int]:
        """Per-sample seeds of this round's global batch (independent of the number of workers)."""
        return [derive_seed(self.seed, purpose, self.rounds, i) for i in range(count)]

    def local(self, items: Sequence) -> list:
        return distributed.shard(items)

    def micro_batches(self, size: int) -> list[slice]:
        width = self.config.micro_batch_size or max(size, 1)  # no rows: no micro-batches
        return [slice(i, min(i + width, size)) for i in range(0, size, width)]

    def sample(
        self, prompts: Sequence[str], seeds: Sequence[int], grad_from: int | None = None, stochastic_steps=None
    ) -> Trajectory:
        with self.clock.phase("sample"):
            trajectory = self.policy.sample(
                prompts,
                seeds,
                self.sampler,
                frames=self.frames,
                height=self.height,
                width=self.width,
                grad_from=grad_from,
                stochastic_steps=stochastic_steps,
            )
        self.ledger.samples += len(prompts) * distributed.world_size()
        return trajectory

    def _frames_scored(self) -> int:
        choice = self.config.decode_frames
        if choice == "all":
            return self.frames
        if choice == "alt":
            return (self.frames + 1) // 2
        return min(int(choice), self.frames)

    def frame_index(self) -> torch.Tensor | None:
        """Frames to decode and score: the paper's frame subsampling (VADER's `decode_frame`)."""
        choice = self.config.decode_frames
        if choice == "all":
            return None
        if choice == "alt":
            return torch.arange(0, self.frames, 2)
        return torch.tensor(sorted(self.rng.sample(range(self.frames), self._frames_scored())))

    def score(
        self, latents: torch.Tensor, prompts: Sequence[str], frame_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode the chosen frames and query the reward model (counted on the ledger)."""
        with self.clock.phase("reward"):
            frames = self.policy.decode(latents, frame_index)
            rewards = self.reward(frames, list(prompts))
        self.ledger.reward_queries += len(prompts) * distributed.world_size()
        return rewards

    def require_stochastic_steps(self, needs: str) -> None:
        """Refuse a schedule with a zero-variance step, where `needs` (a log-probability, a KL) has no density."""
        if not bool((self.policy.step_stds(self.sampler) > 0).all()):
            raise ValueError(
                f"{needs} needs every sampling step to be stochastic, but a step of this schedule has zero "
                "variance (a DDIM scheduler with set_alpha_to_one=True? use False or another timestep spacing)"
            )

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradient of `loss` (timed: the backward pass is a phase of its own)."""
        with self.clock.phase("backward"):
            loss.backward()

    def apply_gradients(self) -> float:
        """Average gradients over workers, clip, take an AdamW step; returns the pre-clip gradient norm."""
        with self.clock.phase("optimizer"):
            parameters = self.policy.trainable_parameters()
            distributed.average_gradients(parameters)
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.ledger.optimizer_steps += 1
        return float(norm)

    def evaluate(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Rewards of videos sampled from fixed seeds (all frames, no gradient), gathered over workers.

        Not counted as reward queries: evaluation is the measurement, not part of the method's budget.
        """
        return self.evaluate_videos(prompts, seeds).rewards

    @torch.no_grad()
    def evaluate_videos(
        self, prompts: Sequence[str], seeds: Sequence[int], sampler: SamplerSettings | None = None
    ) -> Evaluation:
        """`evaluate`'s rewards and this worker's videos, sampled with `sampler` (default: the method's own),
        with the policy's KL from the base model along them and the reward ensemble's spread where defined."""
        sampler = sampler or self.sampler
        prompts, seeds = self.local(prompts), self.local(seeds)
        predictions = []  # the policy's outputs along the way: the KL needs only the reference's besides
        trajectory = self.policy.sample(
            prompts,
            seeds,
            sampler,
            frames=self.frames,
            height=self.height,
            width=self.width,
            on_denoiser_call=lambda step, output: predictions.append(output),
        )
        videos = self.policy.decode(trajectory.final)
        kl = None
        if bool((self.policy.step_stds(sampler) > 0).all()):
            kl = self.policy.trajectory_kl(trajectory, sampler, predictions)
        spread = None
        if hasattr(self.reward, "members"):
            spread = self.reward.members(videos, prompts).std(dim=0, unbiased=False)
        return Evaluation(
            rewards=distributed.gather(self.reward(videos, prompts)),
            videos=videos,
            kl=None if kl is None else distributed.gather(kl),
            member_spread=None if spread is None else distributed.gather(spread),
        )

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "lora": self.policy.lora_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ledger": asdict(self.ledger),
            "rounds": self.rounds,
            "rng": self.rng.getstate(),
            "method": self._method_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_lora_state_dict(state["lora"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ledger = Ledger(**state["ledger"])
        self.rounds = state["rounds"]
        self.rng.setstate(state["rng"])
        self._load_method_state(state["method"])

    def _method_state(self) -> dict[str, Any]:
        return {}

    def _load_method_state(self, state: dict[str, Any]) -> None:  # noqa: B027  (optional: no state by default)
        pass


def reward_stats(rewards: torch.Tensor) -> dict[str, float]:
    """Mean and (population) std of this round's local rewards, over all workers."""
    everything = distributed.gather(rewards.detach())
    return {REWARD_MEAN: float(everything.mean()), REWARD_STD: float(everything.std(unbiased=False))}


def registered_aligners() -> list[str]:
    """Every registered aligner's name, by family (in FAMILIES' order), then by name."""
    return sorted(ALIGNERS.names(), key=lambda name: (FAMILIES.index(ALIGNERS.get(name).family), name))


def build_aligner(
    name: str, policy: Policy, reward: Reward, settings: dict[str, Any] | None = None, **geometry: Any
) -> Aligner:
    """An aligner by its registered name, its settings checked (unknown keys and bad values: ValueError)."""
    cls = ALIGNERS.get(name)
    config = cls.Config.from_dict(settings or {})
    return cls(policy, reward, config, **geometry)
