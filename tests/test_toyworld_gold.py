"""Gold measures, reference videos and headroom of the toy rewards (pixels and captions; shipped reward weights)."""

import json
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from vaderbench.cli import main
from vaderbench.rewards.base import build_reward
from vaderbench.toyworld.evaluate import REWARD_CHECKS
from vaderbench.toyworld.gold import caption_fidelity, gold_aesthetic, pixel_direction, steady_fraction
from vaderbench.toyworld.headroom import headroom
from vaderbench.toyworld.labels import aesthetic_score
from vaderbench.toyworld.pixels import read_frames
from vaderbench.toyworld.prompts import heldout_prompts
from vaderbench.toyworld.references import best_colour_pair, reference_videos
from vaderbench.toyworld.render import random_scenes, render
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, RGB, SHAPES, caption, parse_caption

#: the toy rewards: each has its measured check in the toy world's evaluation
TOY_REWARDS = tuple(REWARD_CHECKS)
PROMPTS = heldout_prompts()[::9]  # 24 captions: every colour, shape and direction


def scenes_and_videos(count, seed, frames, size, objects=(1, 1)):
    scenes = random_scenes(count, torch.Generator().manual_seed(seed), objects=objects)
    return scenes, render(scenes, frames, size)


@pytest.mark.parametrize("size", [16, 23, 32, 64])
@pytest.mark.parametrize("frames", [1, 4, 8])
def test_gold_aesthetic_of_a_render_is_its_rule(size, frames):
    scenes, videos = scenes_and_videos(60, size * frames, frames, size, objects=(0, 1))
    assert (~scenes.present[:, 0]).any() and scenes.present[:, 0].any()
    assert torch.allclose(gold_aesthetic(videos), aesthetic_score(scenes), atol=1e-5, rtol=0)


def rule_by_hand(shape, background):
    contrast = math.dist(RGB[shape], RGB[background]) / math.sqrt(3)
    return 0.7 * contrast + 0.3 * (max(RGB[background]) - min(RGB[background]))


def grid(videos, every=4):
    """Grey lines every `every` pixels (grey is no palette colour)."""
    out = videos.clone()
    out[..., ::every, :] = out[..., :, ::every] = 0.5
    return out


@pytest.mark.parametrize("size", [32, 64])
def test_gold_aesthetic_is_lower_on_noise_a_grid_and_blur(size):
    _, videos = scenes_and_videos(40, 7, 2, size)
    clean = gold_aesthetic(videos)
    noisy = (videos + 0.15 * torch.randn(videos.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    blurred = TF.gaussian_blur(videos.flatten(0, 1), [13, 13], [2.0, 2.0]).view_as(videos)
    for hacked in (noisy, grid(videos), blurred):
        assert (gold_aesthetic(hacked) < clean).all()
    assert (gold_aesthetic(noisy) < 0.5 * clean).all()


def test_pixels_read_a_render_back():
    scenes, videos = scenes_and_videos(200, 3, 5, 24)
    seen = read_frames(videos.flatten(0, 1))
    assert torch.equal(seen.background.view(200, 5), scenes.background[:, None].expand(200, 5))
    assert torch.equal(seen.colour.view(200, 5), scenes.colour[:, :1].expand(200, 5))
    assert torch.equal(pixel_direction(videos), scenes.direction[:, 0])
    with pytest.raises(ValueError, match="at least 2 frames"):
        pixel_direction(videos[:, :1])


def test_steady_fraction_is_one_on_renders_and_counts_the_pairs_a_swapped_frame_breaks():
    scenes, videos = scenes_and_videos(60, 4, 6, 32)
    others = render(random_scenes(60, torch.Generator().manual_seed(5)), 6, 32)
    assert torch.equal(steady_fraction(videos), torch.ones(60))
    broken = videos.clone()
    broken[:, 2] = others[:, 2]
    swapped = read_frames(others[:, 2])
    different = (swapped.colour != scenes.colour[:, 0]) | (swapped.background != scenes.background)
    assert torch.equal(steady_fraction(broken)[different], torch.full((int(different.sum()),), 3 / 5))


def test_caption_fidelity_compares_what_the_detector_says_and_the_background_the_pixels_show():
    _, videos = scenes_and_videos(3, 8, 2, 16)
    # a stand-in detector that always sees a square (shape 1) coloured blue
    logits = torch.full((len(SHAPES) + len(COLOURS),), -5.0)
    logits[SHAPES.index("square")] = logits[len(SHAPES) + COLOURS.index("blue")] = 5.0

    def detector(frames):
        return logits.expand(frames.shape[0], -1)

    backgrounds = [COLOURS[i] for i in read_frames(videos[:, 0]).background.tolist()]
    prompts = [
        caption("blue", "square", "left", backgrounds[0]),
        caption("blue", "circle", "left", backgrounds[1]),
        caption("red", "square", "left", "white" if backgrounds[2] != "white" else "black"),
    ]
    fidelity = caption_fidelity(videos, prompts, detector)
    assert fidelity["colour"].tolist() == [1, 1, 0] and fidelity["shape"].tolist() == [1, 0, 1]
    assert fidelity["background"].tolist() == [1, 1, 0] and "direction" not in fidelity


def polar_moment(coverage):
    """Second moment of the coverage about its centroid over the area squared.

    Circle 1/2pi, square 1/6, triangle sqrt(3)/9."""
    h = coverage.shape[-1]
    grid = (torch.arange(h) + 0.5) / h
    area = coverage.sum(dim=(1, 2))
    cx, cy = (coverage.sum(dim=1) * grid).sum(dim=1) / area, (coverage.sum(dim=2) * grid).sum(dim=1) / area
    squared = (grid.view(1, 1, h) - cx.view(-1, 1, 1)) ** 2 + (grid.view(1, h, 1) - cy.view(-1, 1, 1)) ** 2
    moment = (coverage * squared).sum(dim=(1, 2))
    return moment * h**2 / area**2


def test_the_oracle_of_a_caption_is_its_render_and_references_are_deterministic():
    videos = reference_videos(PROMPTS, 2, 64, "caption", seed=1)
    assert torch.equal(videos, reference_videos(PROMPTS, 2, 64, "caption", seed=1))
    assert not torch.equal(videos, reference_videos(PROMPTS, 2, 64, "caption", seed=2))
    rules = [rule_by_hand(parse_caption(p)["colour"], parse_caption(p)["background"]) for p in PROMPTS]
    assert gold_aesthetic(videos).tolist() == pytest.approx(rules, abs=1e-5)
    seen = read_frames(videos[:, 0])
    moments = torch.tensor([1 / (2 * math.pi), 1 / 6, math.sqrt(3) / 9])
    shapes = (polar_moment(seen.coverage)[:, None] - moments).abs().argmin(dim=1)
    directions = pixel_direction(videos)
    for i, prompt in enumerate(PROMPTS):
        truth = parse_caption(prompt)
        assert (COLOURS[seen.colour[i]], COLOURS[seen.background[i]]) == (truth["colour"], truth["background"])
        assert (SHAPES[shapes[i]], DIRECTIONS[directions[i]]) == (truth["shape"], truth["direction"])


def test_best_scene_keeps_the_layout_in_the_colour_pair_the_rule_rates_highest():
    shape, background = best_colour_pair()
    by_hand = {(a, b): rule_by_hand(a, b) for a in COLOURS for b in COLOURS if a != b}
    assert max(by_hand, key=by_hand.get) == (COLOURS[shape], COLOURS[background])
    best, own = (reference_videos(PROMPTS, 2, 32, kind, seed=3) for kind in ("best_scene", "caption"))
    assert torch.allclose(read_frames(best.flatten(0, 1)).coverage, read_frames(own.flatten(0, 1)).coverage, atol=1e-5)
    assert torch.allclose(gold_aesthetic(best), torch.full((len(PROMPTS),), max(by_hand.values())), atol=1e-5)


def test_chance_for_a_prompt_conditioned_reward_is_other_captions_renders():
    own, shuffled = (reference_videos(PROMPTS, 2, 16, kind, seed=4) for kind in ("caption", "shuffled"))
    match = (shuffled[:, None] == own[None]).flatten(2).all(dim=2).float()  # [shuffled, caption]
    once = torch.ones(len(PROMPTS))
    assert torch.equal(match.sum(dim=0), once) and torch.equal(match.sum(dim=1), once)  # a permutation
    assert match.diagonal().sum() == 0
    with pytest.raises(ValueError, match="at least 2 prompts"):
        reference_videos(PROMPTS[:1], 2, 16, "shuffled", seed=4)


def test_random_and_background_references():
    random = reference_videos(PROMPTS, 4, 16, "random", seed=5)
    assert steady_fraction(random).mean() < 0.2  # every frame from another scene
    bare = reference_videos(PROMPTS, 2, 16, "background", seed=5)
    seen = read_frames(bare.flatten(0, 1))
    assert not seen.present.any()
    assert [COLOURS[i] for i in seen.background[::2].tolist()] == [parse_caption(p)["background"] for p in PROMPTS]


@pytest.fixture(scope="module")
def rewards():
    return {name: build_reward(name) for name in TOY_REWARDS}


def test_every_toy_reward_says_what_its_references_are_and_has_a_gold_in_0_1(rewards):
    prompt_free = {"toy_aesthetic", "toy_aesthetic_clean", "toy_consistency"}
    assert {name for name in TOY_REWARDS if rewards[name].prompt_free} == prompt_free
    videos = reference_videos(PROMPTS[:4], 4, 16, "caption", seed=6)
    for reward in rewards.values():
        gold = reward.gold(videos, PROMPTS[:4])
        assert gold.shape == (4,) and (gold >= 0).all() and (gold <= 1).all()
        assert reference_videos(PROMPTS[:2], 4, 16, reward.oracle, seed=6).shape == (2, 4, 3, 16, 16)


def test_golds_follow_their_rules_on_renders(rewards):
    videos = reference_videos(PROMPTS, 4, 32, "caption", seed=7)
    other_background = []
    for prompt in PROMPTS:
        truth = parse_caption(prompt)
        elsewhere = next(c for c in COLOURS if c not in (truth["colour"], truth["background"]))
        other_background.append(caption(truth["colour"], truth["shape"], truth["direction"], elsewhere))
    clip = rewards["toy_clip"]  # the same video: the detector sees the same; the background check flips
    drop = clip.gold(videos, PROMPTS) - clip.gold(videos, other_background)
    assert torch.allclose(drop, torch.full((len(PROMPTS),), 1 / 3))
    still = [p.replace(f"moving {parse_caption(p)['direction']}", "standing still") for p in PROMPTS]
    moving = [p != s for p, s in zip(PROMPTS, still)]
    assert torch.equal(rewards["toy_action"].gold(videos, PROMPTS), torch.ones(len(PROMPTS)))
    assert torch.equal(rewards["toy_action"].gold(videos, still), 1 - torch.tensor(moving, dtype=torch.float))
    assert torch.equal(rewards["toy_aesthetic"].gold(videos, PROMPTS), gold_aesthetic(videos))
    assert torch.equal(rewards["toy_consistency"].gold(videos, PROMPTS), torch.ones(len(PROMPTS)))
    removal = rewards["toy_object_removal"]
    bare = reference_videos(PROMPTS, 4, 32, "background", seed=7)
    assert removal.gold(bare, PROMPTS).mean() > 0.9 and removal.gold(videos, PROMPTS).mean() < 0.1


def test_headroom_is_the_mean_reward_of_each_kind_of_video(rewards):
    prompts, frames, size, seed = PROMPTS[:5], 4, 16, 8
    base = render(random_scenes(5, torch.Generator().manual_seed(9)), frames, size)
    for name in ("toy_clip", "toy_aesthetic"):
        reward = rewards[name]
        row = headroom(reward, prompts, frames, size, seed, base_videos=base)
        kinds = {"chance": "random" if reward.prompt_free else "shuffled", "oracle": reward.oracle}
        videos = {key: reference_videos(prompts, frames, size, kind, seed) for key, kind in kinds.items()}
        videos["base"] = base
        for key, video in videos.items():
            assert row[key] == pytest.approx(float(reward(video, prompts).mean()), abs=1e-4)
            assert row["gold_" + key] == pytest.approx(float(reward.gold(video, prompts).mean()), abs=1e-4)
        expected = (row["base"] - row["chance"]) / (row["oracle"] - row["chance"])
        # the row's values are rounded to 4 decimals: their error grows by 1 / (oracle - chance) in the position
        assert row["base_position"] == pytest.approx(expected, abs=2e-4 / abs(row["oracle"] - row["chance"]))
    without_base = headroom("toy_aesthetic", prompts, frames, size, seed)
    assert without_base.keys() == {"chance", "oracle", "gold_chance", "gold_oracle"}


@pytest.mark.slow  # samples the base model at 3 sizes twice and scores every reward: about a minute on 2 cores
def test_toyworld_eval_json_reports_headroom_of_every_reward_at_every_size(capsys):
    assert main(["toyworld", "eval", "--json", "--videos", "3", "--base-videos", "2", "--proxy-captions", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    keys = {"chance", "base", "oracle", "base_position"}
    keys |= {"gold_" + key for key in keys}
    assert set(results["headroom"]) == set(TOY_REWARDS)
    for sizes in results["headroom"].values():
        assert set(sizes) == {"16", "32", "64"} and all(set(row) == keys for row in sizes.values())
    for sizes in results["proxy"].values():  # is each learned reward a faithful proxy of its gold?
        assert set(sizes) == {"16", "32", "64"}
        for row in sizes.values():
            assert set(row["pair_accuracy"]) == {"all", "gap_0.05"}
            assert set(row["pair_accuracy"]["all"]) == {"value", "low", "high", "pairs"}
            assert list(row["best_of_n"]) == ["1", "2", "4", "8", "16"]
            assert set(row["ladder"]) == {"noise", "blur", "colour_shift", "flicker", "grid", "missing_object", "mean"}
    assert set(results["proxy"]) == set(TOY_REWARDS)
    assert main(["toyworld", "eval", "--base-videos", "1"]) == 2
    assert "--base-videos" in capsys.readouterr().err
