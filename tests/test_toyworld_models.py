"""The shipped toy-world weights: they load, the rewards score the world, the base model draws captions."""

import math
import shutil

import pytest
import torch

from vaderbench.cli import main
from vaderbench.models.toy import coordinate_codes, load_toy_model
from vaderbench.registry import MODELS, PROMPT_SETS, REWARDS
from vaderbench.rewards.base import build_reward
from vaderbench.toyworld.diagnose import caption_sensitivity, diagnose
from vaderbench.toyworld.evaluate import REWARD_CHECKS, base_accuracy, base_policy, chance, heldout_prompts
from vaderbench.toyworld.labels import aesthetic_score
from vaderbench.toyworld.render import random_scenes, render
from vaderbench.toyworld.train_base import (
    BASE_UNET,
    NUM_TIMESTEPS,
    TIMESTEP_MIXTURE,
    miscaption_colours,
    sample_timesteps,
)
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, caption, parse_caption
from vaderbench.toyworld.weights import WEIGHTS_DIR, ToyWeightsError

#: the toy rewards: each has its measured check in the toy world's evaluation
TOY_REWARDS = tuple(REWARD_CHECKS)
PAIRS = 12  # fresh procedural pairs per ranking check; a reward may misrank at most one


@pytest.fixture(scope="module")
def rewards():
    return {name: build_reward(name) for name in TOY_REWARDS}


def scenes_and_videos(count, seed, frames=8, size=32):
    scenes = random_scenes(count, torch.Generator().manual_seed(seed))
    return scenes, render(scenes, frames, size)


def names(scenes, i):
    return (
        COLOURS[scenes.colour[i, 0]],
        SHAPES[scenes.shape[i, 0]],
        DIRECTIONS[scenes.direction[i, 0]],
        COLOURS[scenes.background[i]],
    )


def other(options, value, shift=1):
    return options[(options.index(value) + shift) % len(options)]


def test_registered_and_shipped_weights_load(rewards):
    assert set(TOY_REWARDS) <= set(REWARDS.names())
    assert {"toy", "toy-random"} <= set(MODELS.names())
    assert {"toy-train", "toy-heldout", "toy-object-removal", "toy-action"} <= set(PROMPT_SETS.names())
    model = MODELS.get("toy")()
    assert model.denoiser.config.patch == BASE_UNET["patch"]
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.rglob("*") if p.is_file())
    assert total <= 20 * 2**20


def test_clip_scores_the_caption_above_one_with_another_colour(rewards):
    scenes, videos = scenes_and_videos(PAIRS, 10)
    right = [caption(*names(scenes, i)) for i in range(PAIRS)]
    wrong = []
    for i in range(PAIRS):
        colour, shape, direction, background = names(scenes, i)
        recoloured = other(COLOURS, colour, 1 if other(COLOURS, colour) != background else 2)
        wrong.append(caption(recoloured, shape, direction, background))
    with torch.no_grad():
        wins = rewards["toy_clip"](videos, right) > rewards["toy_clip"](videos, wrong)
    assert wins.sum() >= PAIRS - 1


def test_aesthetic_prefers_the_video_the_rule_prefers(rewards):
    a, b = random_scenes(64, torch.Generator().manual_seed(11)), random_scenes(64, torch.Generator().manual_seed(12))
    rule = aesthetic_score(a) - aesthetic_score(b)
    keep = torch.nonzero(rule.abs() > 0.3).flatten()[:PAIRS]
    with torch.no_grad():
        score = rewards["toy_aesthetic"](render(a, 2, 32)[keep], [""] * len(keep)) - rewards["toy_aesthetic"](
            render(b, 2, 32)[keep], [""] * len(keep)
        )
    assert ((score > 0) == (rule[keep] > 0)).sum() >= len(keep) - 1


def test_object_removal_prefers_the_video_without_the_named_shape(rewards):
    scenes, with_shape = scenes_and_videos(PAIRS, 13)
    without = scenes_and_videos(PAIRS, 14)[0]
    without.shape[:, 0] = (scenes.shape[:, 0] + 1) % len(SHAPES)
    prompts = [caption(*names(scenes, i)) for i in range(PAIRS)]
    with torch.no_grad():
        wins = rewards["toy_object_removal"](render(without, 8, 32), prompts) > rewards["toy_object_removal"](
            with_shape, prompts
        )
    assert wins.sum() >= PAIRS - 1


def test_action_prefers_the_named_direction(rewards):
    scenes, videos = scenes_and_videos(PAIRS, 15)
    wrong = scenes_and_videos(PAIRS, 16)[0]
    wrong.direction[:, 0] = (scenes.direction[:, 0] + 1) % len(DIRECTIONS)
    prompts = [caption(*names(scenes, i)) for i in range(PAIRS)]
    with torch.no_grad():
        wins = rewards["toy_action"](videos, prompts) > rewards["toy_action"](render(wrong, 8, 32), prompts)
    assert wins.sum() >= PAIRS - 1


def test_consistency_prefers_the_clean_video_to_one_with_a_swapped_frame(rewards):
    _, clean = scenes_and_videos(PAIRS, 17)
    broken = clean.clone()
    broken[:, 4] = scenes_and_videos(PAIRS, 18)[1][:, 4]
    with torch.no_grad():
        wins = rewards["toy_consistency"](clean, [""] * PAIRS) > rewards["toy_consistency"](broken, [""] * PAIRS)
    assert wins.sum() >= PAIRS - 1


@pytest.mark.parametrize("name", TOY_REWARDS)
@pytest.mark.parametrize("size", [16, 40])
def test_gradients_reach_the_frames_at_any_resolution(rewards, name, size):
    scenes, videos = scenes_and_videos(2, 19, frames=4, size=size)
    frames = videos.clone().requires_grad_(True)
    score = rewards[name](frames, [caption(*names(scenes, i)) for i in range(2)])
    assert score.shape == (2,)
    score.sum().backward()
    assert torch.isfinite(frames.grad).all() and frames.grad.abs().sum() > 0
    assert all(p.grad is None for p in rewards[name].parameters())


def test_rewards_name_a_prompt_without_what_they_need(rewards):
    videos = scenes_and_videos(1, 20, frames=4)[1]
    with pytest.raises(ValueError, match="names no shape"):
        rewards["toy_object_removal"](videos, ["a red thing"])
    with pytest.raises(ValueError, match="names no direction"):
        rewards["toy_action"](videos, ["a red circle"])
    with pytest.raises(ValueError, match="at least 3 frames"):
        rewards["toy_consistency"](videos[:, :2], [""])


def test_base_model_draws_held_out_captions_above_chance_and_random_weights_do_not():
    # 24 held-out captions at 32 px; the shipped model scores colour 0.96, shape 0.63, direction 0.83 on them,
    # the model before the t >= 900 share direction 0.54, random weights 0.17, 0.21, 0.17 (README: The toy world)
    prompts = heldout_prompts(24, seed=5)
    trained = base_accuracy(base_policy(load_toy_model()), WEIGHTS_DIR, 32, prompts, seed=5)
    random = base_accuracy(base_policy(MODELS.get("toy-random")(**BASE_UNET)), WEIGHTS_DIR, 32, prompts, seed=5)
    floor = chance()
    assert trained["colour"] >= floor["colour"] + 0.5
    assert trained["shape"] >= floor["shape"] + 0.15 and trained["direction"] >= floor["direction"] + 0.4
    assert all(random[key] < floor[key] + 0.15 for key in floor)


@pytest.mark.parametrize("damage", ["delete", "truncate"])
@pytest.mark.parametrize(
    "file", ["shape_detector.safetensors", "toy_clip.json", "base/unet/diffusion_pytorch_model.safetensors"]
)
def test_missing_or_corrupt_weights_say_how_to_rebuild(tmp_path, damage, file):
    shutil.copytree(WEIGHTS_DIR, tmp_path / "weights")
    target = tmp_path / "weights" / file
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:100])
    load = {
        "shape_detector.safetensors": lambda: REWARDS.get("toy_object_removal")(weights=str(tmp_path / "weights")),
        "toy_clip.json": lambda: REWARDS.get("toy_clip")(weights=str(tmp_path / "weights")),
        "base/unet/diffusion_pytorch_model.safetensors": lambda: load_toy_model(str(tmp_path / "weights" / "base")),
    }[file]
    with pytest.raises(ToyWeightsError, match="vaderbench toyworld build"):
        load()


def test_cli_lists_the_toy_world_and_rejects_a_bad_eval_size(capsys):
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in (*TOY_REWARDS, "toy-heldout"))
    assert main(["toyworld", "eval", "--videos", "0"]) == 2
    assert "--videos" in capsys.readouterr().err


def test_toy_denoiser_predicts_v_and_the_model_hands_the_sampler_epsilon():
    model = MODELS.get("toy-random")(**BASE_UNET)
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 4, 16, 16, generator=generator) * 2 - 1
    noise = torch.randn(clean.shape, generator=generator)
    t = torch.tensor([50, 900])
    a = model.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    noisy = a.sqrt() * clean + (1 - a).sqrt() * noise

    class Oracle(torch.nn.Module):  # a perfect v-prediction for this batch, by diffusers' definition of v
        def forward(self, *args):
            return model.scheduler.get_velocity(clean, noise, t)

    model.denoiser = Oracle()
    eps = model.predict_noise(noisy, t, model.encode_prompts(["", ""]))
    assert torch.allclose(eps, noise, atol=1e-5)
    x0 = (noisy - (1 - a).sqrt() * eps) / a.sqrt()  # the DDIM step's clean estimate
    assert torch.allclose(x0, clean, atol=1e-3)


def test_coordinate_codes_are_fourier_features_of_progress_y_x_and_tell_every_cell_apart():
    codes = coordinate_codes(4, 8, 8, 3)[0]  # [18, F, H, W]: sin of (progress, y, x) at 1, 2, 4 pi, then cos
    assert codes.shape == (18, 4, 8, 8)
    centres = (torch.arange(8) + 0.5) / 8  # in frame units, the same place at any resolution
    assert torch.allclose(codes[2, 0, 0], torch.sin(math.pi * centres), atol=1e-6)  # x at pi
    assert torch.allclose(codes[4, 0, :, 0], torch.sin(2 * math.pi * centres), atol=1e-6)  # y at 2 pi
    assert torch.allclose(
        codes[9 + 6, :, 0, 0], torch.cos(4 * math.pi * torch.linspace(0, 1, 4)), atol=1e-6
    )  # progress at 4 pi
    cells = codes.flatten(1).T
    distance = torch.cdist(cells, cells) + 10 * torch.eye(len(cells))
    assert distance.min() > 0.05  # every (frame, y, x) has its own code
    unet = MODELS.get("toy-random")(**BASE_UNET).denoiser
    assert unet.conv_in.in_channels == 3 * BASE_UNET["patch"] ** 2 + 6 * unet.config.coordinate_frequencies
    with pytest.raises(ValueError, match="16 token states"):  # the caption summary has weights per token slot
        unet(torch.zeros(1, 3, 4, 16, 16), torch.tensor([5]), torch.zeros(1, 9, 64), torch.ones(1, 9, dtype=torch.bool))


def test_diagnosis_of_clean_estimates_against_an_oracle_and_an_identity_denoiser():
    model = MODELS.get("toy-random")(**BASE_UNET)
    scenes = random_scenes(6, torch.Generator().manual_seed(5))  # the scenes `diagnose` draws first from its seed
    clean = render(scenes, 8, 16).transpose(1, 2) * 2 - 1
    alphas = model.scheduler.alphas_cumprod

    class Oracle(torch.nn.Module):  # the exact v for these clean videos, whatever noise was added
        config = model.denoiser.config

        def forward(self, noisy, t, *args):
            a = alphas[t].view(-1, 1, 1, 1, 1)
            eps = (noisy - a.sqrt() * clean) / (1 - a).sqrt()
            return a.sqrt() * eps - (1 - a).sqrt() * clean

    class Identity(Oracle):  # v whose clean estimate is the noisy input itself
        def forward(self, noisy, t, *args):
            a = alphas[t].view(-1, 1, 1, 1, 1)
            return (a.sqrt() - 1) * noisy / (1 - a).sqrt()  # x0 = sqrt(a) x_t - sqrt(1 - a) v = x_t

    model.denoiser = Oracle()
    rows = diagnose(model, WEIGHTS_DIR, size=16, count=6, seed=5, timesteps=(99, 599))
    for row in rows:
        assert row["estimate_rms"] < 1e-4
        assert row["noise_rms"] == pytest.approx(float((1 - alphas[row["t"]]).sqrt()), rel=0.1)
        assert row["shape"] == 1.0 and row["direction"] == 1.0  # the judges on clean 16 px renders
    model.denoiser = Identity()
    (row,) = diagnose(model, WEIGHTS_DIR, size=16, count=6, seed=5, timesteps=(99,))
    # clipping to the pixel range removes the noise that points out of it at saturated colours, no more
    assert 0.8 * row["noise_rms"] < row["estimate_rms"] <= row["noise_rms"]


def test_caption_sensitivity_sees_exactly_the_words_the_denoiser_reads():
    model = MODELS.get("toy-random")(**BASE_UNET)

    class ReadsDirection(torch.nn.Module):  # v depends on the caption's direction word and on nothing else in it
        def forward(self, noisy, t, text, mask):
            return 0.1 * noisy + 0.2 * text.view(-1, 1, 1, 1, 1)

    model.denoiser = ReadsDirection()
    model.encode_prompts = lambda captions: {
        "text": torch.tensor([float(DIRECTIONS.index(parse_caption(c)["direction"])) for c in captions]),
        "text_mask": None,
    }
    for row in caption_sensitivity(model, size=16, count=8, seed=0, timesteps=(599, 899)):
        assert row["colour"] == 0 and row["shape"] == 0
        assert row["direction"] > 0.05


def test_training_timesteps_follow_the_mixture_of_uniform_ranges():
    t = sample_timesteps(200_000, torch.Generator().manual_seed(0))
    assert t.min() == 0 and t.max() == NUM_TIMESTEPS - 1
    for low in range(0, NUM_TIMESTEPS, 100):  # each bin of 100 gets its share of every range that covers it
        expected = sum(share * 100 / (NUM_TIMESTEPS - start) for start, share in TIMESTEP_MIXTURE if start <= low)
        observed = float(((t >= low) & (t < low + 100)).float().mean())
        assert abs(observed - expected) < 4 * math.sqrt(expected / len(t)), (low, observed, expected)


def test_miscaptioned_colours_lie_in_their_share_of_scenes_uniformly_over_the_colours_left():
    scenes = random_scenes(20_000, torch.Generator().manual_seed(0))
    told = miscaption_colours(scenes, 0.3, torch.Generator().manual_seed(1))
    lied = told.colour[:, 0] != scenes.colour[:, 0]
    assert abs(float(lied.float().mean()) - 0.3) < 4 * math.sqrt(0.3 * 0.7 / len(scenes))
    for key in ("background", "shape", "direction", "start", "size", "present"):
        assert torch.equal(getattr(told, key), getattr(scenes, key)), key
    assert miscaption_colours(scenes, 0.0, torch.Generator()).captions()[:100] == scenes.captions()[:100]

    # every lie names one of the six colours that are neither the object's nor the background's, each as often
    every = miscaption_colours(scenes, 1.0, torch.Generator().manual_seed(1)).colour[:, 0]
    assert not ((every == scenes.colour[:, 0]) | (every == scenes.background)).any()
    # the lie's index among the six colours allowed for its scene
    rank = every - (every > scenes.colour[:, 0]).long() - (every > scenes.background).long()
    counts = torch.bincount(rank, minlength=len(COLOURS) - 2).float()
    expected = len(scenes) / (len(COLOURS) - 2)
    assert len(counts) == len(COLOURS) - 2
    assert ((counts - expected).abs() < 4 * math.sqrt(expected)).all(), counts
