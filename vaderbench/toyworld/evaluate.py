"""`vaderbench toyworld eval`: held-out accuracy of every toy reward model, and of the base model's videos.

Everything is measured on fresh procedural data (its own seed, never a training batch):
- toy_clip: retrieval: its caption scores highest among 8 candidates (7 others with another colour,
  shape or background and the same motion, since one frame cannot show motion);
- toy_aesthetic, toy_aesthetic_clean: pairwise ranking agreement with the aesthetic rule on clean renders (pairs
  differing by >= 0.1);
- toy_object_removal: per-frame, per-shape presence accuracy of its detector (0 to 2 objects a frame);
- toy_action: motion-direction accuracy of its classifier (4 to 16 frames);
- toy_consistency: pairwise ranking: a clean video above the same video with one frame swapped for
  another video's frame.
The base model samples held-out captions with the study's sampler (`TOY_SAMPLER`) at 16, 32 and 64 px,
and the detector and direction classifier judge the colour, shape and direction of its videos, the pixels
its background (`gold.caption_fidelity`). `headroom.evaluate_headroom` brackets each reward's value on the
base model's videos between chance and the best procedural videos.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaderbench.policy import Policy, SamplerSettings
from vaderbench.rewards.toy_action import ToyActionReward
from vaderbench.rewards.toy_aesthetic import ToyAestheticCleanReward, ToyAestheticReward
from vaderbench.rewards.toy_clip import ToyClipReward
from vaderbench.rewards.toy_consistency import ToyConsistencyReward
from vaderbench.rewards.toy_object_removal import ToyObjectRemovalReward
from vaderbench.toyworld.gold import caption_fidelity
from vaderbench.toyworld.labels import aesthetic_score, presence
from vaderbench.toyworld.prompts import combos
from vaderbench.toyworld.render import random_scenes, render
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, caption
from vaderbench.toyworld.weights import WEIGHTS_DIR

#: sampling for the toy base model as the default study does it: few DDIM steps, guided
TOY_SAMPLER = SamplerSettings(num_steps=10, eta=1.0, guidance_scale=3.0)
#: the same for `toy-flow` with Euler's ODE, as flow models are evaluated (Flow-GRPO: noise level 0)
TOY_FLOW_SAMPLER = SamplerSettings(num_steps=10, eta=0.0, guidance_scale=3.0)
EVAL_SIZES = (16, 32, 64)
FRAMES = 8


def _videos(scenes, frames: int, index: int) -> torch.Tensor:
    """Renders at a size that cycles through EVAL_SIZES with `index`."""
    return render(scenes, frames, EVAL_SIZES[index % len(EVAL_SIZES)])


def batches(count: int, size: int):
    """(start, length) of the batches that cover `count` items."""
    return [(start, min(size, count - start)) for start in range(0, count, size)]


def clip_retrieval(reward: ToyClipReward, generator: torch.Generator, count: int, candidates: int = 8) -> float:
    hits = 0
    for i in range(count):
        scenes = random_scenes(1, generator)
        video = _videos(scenes, FRAMES, i)
        direction = DIRECTIONS[scenes.direction[0, 0]]
        true = (COLOURS[scenes.colour[0, 0]], SHAPES[scenes.shape[0, 0]], COLOURS[scenes.background[0]])
        options = [true]
        while len(options) < candidates:
            others = random_scenes(1, generator)
            other = (COLOURS[others.colour[0, 0]], SHAPES[others.shape[0, 0]], COLOURS[others.background[0]])
            if other not in options:
                options.append(other)
        prompts = [caption(c, s, direction, b) for c, s, b in options]
        scores = reward(video.expand(candidates, *video.shape[1:]), prompts)
        hits += int(scores.argmax() == 0)
    return hits / count


def aesthetic_ranking(reward: ToyAestheticReward, generator: torch.Generator, count: int, margin: float = 0.1) -> float:
    agree = total = 0
    for i, n in batches(count, 32):
        a, b = random_scenes(n, generator), random_scenes(n, generator)
        rule = aesthetic_score(a) - aesthetic_score(b)
        score = reward(_videos(a, 2, i), [""] * n) - reward(_videos(b, 2, i), [""] * n)
        keep = rule.abs() >= margin
        agree += int(((rule > 0) == (score > 0))[keep].sum())
        total += int(keep.sum())
    return agree / max(1, total)


def shape_presence(reward: ToyObjectRemovalReward, generator: torch.Generator, count: int) -> float:
    correct = 0
    for i, n in batches(count, 64):
        scenes = random_scenes(n, generator, objects=(0, 2))
        logits = reward.detector(_videos(scenes, 1, i)[:, 0])[:, : len(SHAPES)]
        correct += int(((logits > 0).float() == presence(scenes)[:, : len(SHAPES)]).all(dim=1).sum())
    return correct / count


def direction_accuracy(reward: ToyActionReward, generator: torch.Generator, count: int) -> float:
    correct = 0
    for i, n in batches(count, 32):
        scenes = random_scenes(n, generator)
        frames = (4, 8, 16)[(i // 32) % 3]
        predicted = reward.classifier(render(scenes, frames, EVAL_SIZES[(i // 96) % 3])).argmax(dim=1)
        correct += int((predicted == scenes.direction[:, 0]).sum())
    return correct / count


def consistency_ranking(reward: ToyConsistencyReward, generator: torch.Generator, count: int) -> float:
    agree = 0
    for i, n in batches(count, 32):
        clean, other = _videos(random_scenes(n, generator), FRAMES, i), _videos(random_scenes(n, generator), FRAMES, i)
        swap = int(torch.randint(2, FRAMES, (1,), generator=generator))
        broken = clean.clone()
        broken[:, swap] = other[:, swap]
        agree += int((reward(clean, [""] * n) > reward(broken, [""] * n)).sum())
    return agree / count


REWARD_CHECKS = {
    "toy_clip": ("retrieval accuracy among 8 captions", ToyClipReward, clip_retrieval),
    "toy_aesthetic": ("pairwise ranking accuracy vs the aesthetic rule", ToyAestheticReward, aesthetic_ranking),
    "toy_object_removal": (
        "shape-presence accuracy per frame (all 3 shapes right)",
        ToyObjectRemovalReward,
        shape_presence,
    ),
    "toy_action": ("motion-direction accuracy", ToyActionReward, direction_accuracy),
    "toy_consistency": (
        "pairwise ranking accuracy, clean vs one swapped frame",
        ToyConsistencyReward,
        consistency_ranking,
    ),
    # last: the rewards above keep the seeds they were measured with
    "toy_aesthetic_clean": (
        "pairwise ranking accuracy vs the aesthetic rule",
        ToyAestheticCleanReward,
        aesthetic_ranking,
    ),
}


def toy_rewards(weights: Path = WEIGHTS_DIR) -> dict:
    """Every toy reward, built from `weights` and frozen, by name."""
    return {name: cls(str(weights)).freeze() for name, (_, cls, _) in REWARD_CHECKS.items()}


@torch.no_grad()
def evaluate_rewards(weights: Path = WEIGHTS_DIR, count: int = 384, seed: int = 1234) -> dict:
    results = {}
    for number, (name, (metric, cls, check)) in enumerate(REWARD_CHECKS.items()):
        generator = torch.Generator().manual_seed(seed + number)
        n = max(1, count // 3) if name == "toy_clip" else count  # retrieval scores 8 captions per video
        results[name] = {"metric": metric, "value": round(check(cls(str(weights)).freeze(), generator, n), 4)}
    return results


def heldout_prompts(count: int, seed: int) -> list[str]:
    pool = combos(held_out=True)
    index = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:count]
    return [caption(*pool[i]) for i in index.tolist()]


def base_policy(model) -> Policy:
    # zero-initialised adapters: the base model itself. fp32: on some CPUs this torch build runs bf16 Conv3d
    # through `slow_conv3d_forward` at batch 8 and above (about 100x slower than fp32 at 64 px)
    return Policy(model, lora_rank=1)


@torch.no_grad()
def sample_videos(
    policy: Policy, prompts: list[str], frames: int, size: int, seed: int, batch: int = 20, sampler=TOY_SAMPLER
):
    """The policy's videos [N, F, 3, H, W] of `prompts` with the study's sampler, prompt i from seed + i."""
    videos = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        seeds = [seed + start + i for i in range(len(chunk))]
        trajectory = policy.sample(chunk, seeds, sampler, frames=frames, height=size, width=size)
        videos.append(policy.decode(trajectory.final))
    return torch.cat(videos)


def on_base_videos(weights: Path, prompts: list[str], sizes, frames: int, seed: int, measure) -> dict:
    """{reward: {size: measure(reward, videos, size)}} for every toy reward, on one set of the base model's videos
    of `prompts` per size (the study's sampler), shared by every reward."""
    from vaderbench.models.toy import load_toy_model

    policy = base_policy(load_toy_model(str(weights / "base")))
    rewards = toy_rewards(weights)
    results = {name: {} for name in rewards}
    for size in sizes:
        videos = sample_videos(policy, prompts, frames, size, seed)
        for name, reward in rewards.items():
            results[name][str(size)] = measure(reward, videos, size)
    return results


def base_accuracy(
    policy: Policy, weights: Path, size: int, prompts: list[str], seed: int, sampler=TOY_SAMPLER
) -> dict[str, float]:
    """Caption fidelity of the base policy's videos (`gold.caption_fidelity`), averaged over the prompts."""
    detector = ToyObjectRemovalReward(str(weights)).freeze().detector
    classifier = ToyActionReward(str(weights)).freeze().classifier
    videos = sample_videos(policy, prompts, FRAMES, size, seed, sampler=sampler)
    fidelity = caption_fidelity(videos, prompts, detector, classifier)
    return {key: round(float(value.mean()), 4) for key, value in fidelity.items()}


def evaluate_base(
    weights: Path = WEIGHTS_DIR, count: int = 60, seed: int = 4321, sizes=EVAL_SIZES, flow: bool = False
) -> dict:
    """The base model's caption fidelity per size; `flow`: of `toy-flow` (the same weights) with Euler's ODE."""
    from vaderbench.models.toy import load_toy_flow_model, load_toy_model

    prompts = heldout_prompts(count, seed)
    load, sampler = (load_toy_flow_model, TOY_FLOW_SAMPLER) if flow else (load_toy_model, TOY_SAMPLER)
    policy = base_policy(load(str(weights / "base")))  # one policy for every size: adapters are injected once
    return {str(size): base_accuracy(policy, weights, size, prompts, seed, sampler) for size in sizes}


def chance() -> dict[str, float]:
    names = {"colour": COLOURS, "shape": SHAPES, "direction": DIRECTIONS, "background": COLOURS}
    return {key: round(1 / len(values), 4) for key, values in names.items()}
