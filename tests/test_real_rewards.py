"""The real reward models, on tiny random models saved and loaded through the real loading code."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_models as tm
import torch
from PIL import Image

from vaderbench import catalogue
from vaderbench.registry import REWARDS
from vaderbench.rewards import WeightedSum, build_reward
from vaderbench.rewards.aesthetic import AestheticHead, AestheticReward
from vaderbench.rewards.base import shared_rewards
from vaderbench.rewards.hpsv2 import HPSv2Reward
from vaderbench.rewards.pickscore import PickScoreReward
from vaderbench.rewards.videomae import VideoMAEActionReward
from vaderbench.rewards.vjepa import VJEPAConsistencyReward
from vaderbench.rewards.yolos import YolosRemovalReward

PROMPTS = ["a cat playing guitar on the beach", "a dog running"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Paths of every tiny reward model, saved as the real weights are."""
    d = tmp_path_factory.mktemp("reward_models")
    return {
        "clip_model": tm.register_tiny_open_clip(d),
        "clip": str(tm.save_tiny_open_clip(d / "clip.pt")),
        "hps": str(tm.save_tiny_open_clip(d / "hps.pt", under_key="state_dict")),
        "head": str(tm.save_tiny_aesthetic_head(d / "head.pth")),
        "pickscore": str(tm.save_tiny_pickscore(d / "pickscore")),
        "yolos": str(tm.save_tiny_yolos(d / "yolos")),
        "videomae": str(tm.save_tiny_videomae(d / "videomae")),
        "vjepa": str(tm.save_tiny_vjepa(d / "vjepa")),
    }


@pytest.fixture(scope="module")
def rewards(saved):
    built = {
        "aesthetic": AestheticReward(head=saved["head"], clip_model=saved["clip_model"], clip_checkpoint=saved["clip"]),
        "hpsv2": HPSv2Reward(checkpoint=saved["hps"], clip_model=saved["clip_model"]),
        "pickscore": PickScoreReward(model=saved["pickscore"], processor=saved["pickscore"]),
        "yolos_removal": YolosRemovalReward(target="book", model=saved["yolos"]),
        "videomae_action": VideoMAEActionReward(model=saved["videomae"]),
        "vjepa_consistency": VJEPAConsistencyReward(model=saved["vjepa"], num_blocks=2, block_scale=0.25),
    }
    return {name: reward.freeze() for name, reward in built.items()}


@pytest.fixture(scope="module")
def image():
    """A smooth random 40x48 image (PIL) and the same pixels as a [1, 3, H, W] tensor in [0, 1]."""
    rng = np.random.default_rng(0)
    pil = Image.fromarray((rng.random((10, 12, 3)) * 255).astype("uint8")).resize((48, 40), Image.BILINEAR)
    return pil, torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float()[None] / 255


def assert_close_to_processor(ours: torch.Tensor, reference: torch.Tensor):
    # in normalised units (pixel / std): 0.03 is under two grey levels of 255
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 0.03
    assert (ours - reference).abs().mean() < 0.01


def test_every_real_reward_is_registered():
    catalogue.load_all()
    for name in ["aesthetic", "hpsv2", "pickscore", "yolos_removal", "videomae_action", "vjepa_consistency"]:
        assert name in REWARDS


@pytest.mark.parametrize("name", ["aesthetic", "hpsv2"])
def test_open_clip_preprocessing_matches_open_clip_transform(rewards, image, name):
    import open_clip

    clip = rewards[name].clip
    cfg = open_clip.get_model_preprocess_cfg(clip)
    transform = open_clip.image_transform(
        cfg["size"],
        is_train=False,
        mean=cfg["mean"],
        std=cfg["std"],
        interpolation=cfg["interpolation"],
        resize_mode=cfg["resize_mode"],
    )
    pil, tensor = image
    assert_close_to_processor(rewards[name].image_input(tensor), transform(pil)[None])


def test_pickscore_preprocessing_matches_clip_processor(rewards, saved, image):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    pil, tensor = image
    reference = CLIPImageProcessorPil.from_pretrained(saved["pickscore"])(pil, return_tensors="pt").pixel_values
    assert_close_to_processor(rewards["pickscore"].preprocess(tensor), reference)


def test_yolos_preprocessing_matches_yolos_processor(rewards, saved, image):
    from transformers.models.yolos.image_processing_pil_yolos import YolosImageProcessorPil

    pil, tensor = image
    reference = YolosImageProcessorPil.from_pretrained(saved["yolos"])(pil, return_tensors="pt").pixel_values
    assert_close_to_processor(rewards["yolos_removal"].preprocess(tensor), reference)


def test_videomae_preprocessing_matches_videomae_processor(rewards, saved, image):
    from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

    reward = rewards["videomae_action"]
    _, tensor = image
    # 7 frames of different brightness (8-bit values); the model's 4 frames are 0, 2, 4, 6 (evenly spaced)
    frames = (tensor[:, None] * torch.linspace(0.4, 1.0, 7).view(1, 7, 1, 1, 1) * 255).round() / 255
    pils = [Image.fromarray((frames[0, i] * 255).round().byte().permute(1, 2, 0).numpy()) for i in (0, 2, 4, 6)]
    reference = VideoMAEImageProcessorPil.from_pretrained(saved["videomae"])(pils, return_tensors="pt").pixel_values
    assert_close_to_processor(reward.preprocess(frames), reference)


def test_vjepa_preprocessing_matches_video_processor(rewards, saved, image):
    from transformers import VJEPA2VideoProcessor

    _, tensor = image
    video = (tensor[0] * 255).round().to(torch.uint8).expand(4, -1, -1, -1)
    reference = VJEPA2VideoProcessor.from_pretrained(saved["vjepa"])(video, return_tensors="pt").pixel_values_videos
    assert_close_to_processor(rewards["vjepa_consistency"].preprocess(video[None].float() / 255), reference)


@pytest.mark.parametrize(
    "name", ["aesthetic", "hpsv2", "pickscore", "yolos_removal", "videomae_action", "vjepa_consistency"]
)
def test_reward_is_differentiable_in_the_frames_and_frozen(rewards, name):
    reward = rewards[name]
    frames = torch.rand(2, 4, 3, 40, 48, requires_grad=True)
    scores = reward(frames, PROMPTS)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    scores.sum().backward()
    assert frames.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in reward.parameters())


def test_aesthetic_head_has_the_released_weight_names():
    # sac+logos+ava1-l14-linearMSE.pth holds exactly these keys; a strict load of it must work
    expected = {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}
    assert set(AestheticHead(768).state_dict()) == expected


def test_hps_checkpoint_without_state_dict_key_is_a_clear_error(saved):
    with pytest.raises(ValueError, match="state_dict"):
        HPSv2Reward(checkpoint=saved["clip"], clip_model=saved["clip_model"])


def test_hps_is_the_cosine_of_open_clip_features(rewards):
    reward = rewards["hpsv2"]
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        image_features = reward.clip.encode_image(reward.image_input(images))
        text_features = reward.clip.encode_text(reward.tokenizer(PROMPTS))
        expected = torch.nn.functional.cosine_similarity(image_features, text_features)
        assert torch.allclose(reward.score_images(images, PROMPTS), expected, atol=1e-5)


def test_pickscore_equals_clip_logits_per_image(rewards):
    reward = rewards["pickscore"]
    images = torch.rand(2, 3, 32, 32)
    text = reward.processor.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = reward.model(pixel_values=reward.preprocess(images), **text).logits_per_image
        assert torch.allclose(reward.score_images(images, PROMPTS), logits.diagonal(), atol=1e-4)


def test_yolos_reward_is_minus_the_target_probability(rewards):
    reward = rewards["yolos_removal"]
    classifier = reward.model.class_labels_classifier.layers[-1]
    frames = torch.rand(1, 2, 3, 32, 32)
    original = classifier.bias.detach().clone()
    try:
        with torch.no_grad():
            classifier.bias[reward.class_id] = 30.0  # the detector is sure every token is a book
            assert torch.allclose(reward(frames, PROMPTS[:1]), torch.tensor([-1.0]), atol=1e-4)
            classifier.bias[reward.class_id] = -30.0  # and sure none is
            assert torch.allclose(reward(frames, PROMPTS[:1]), torch.tensor([0.0]), atol=1e-4)
    finally:
        with torch.no_grad():
            classifier.bias.copy_(original)


def test_yolos_target_must_be_a_class_of_the_model(saved):
    with pytest.raises(ValueError, match="giraffe"):
        YolosRemovalReward(target="giraffe", model=saved["yolos"])


def test_videomae_finds_the_longest_action_named_in_the_prompt(rewards):
    reward = rewards["videomae_action"]
    labels = {name: i for i, name in tm.VIDEOMAE_LABELS.items()}
    assert reward.class_of("a man playing guitar bass on stage") == labels["playing guitar bass"]
    assert reward.class_of("a man playing guitar") == labels["playing guitar"]
    with pytest.raises(ValueError, match="no action class"):
        reward.class_of("a sunset over the sea")
    with pytest.raises(ValueError, match="no action class"):
        reward(torch.rand(1, 4, 3, 32, 32), ["a sunset over the sea"])


def test_videomae_reward_is_the_class_probability(rewards):
    reward = rewards["videomae_action"]
    frames = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        probs = reward.model(pixel_values=reward.preprocess(frames)).logits.softmax(-1)
        expected = probs[[0, 1], [reward.class_of(PROMPTS[0]), reward.class_of(PROMPTS[1])]]
        assert torch.allclose(reward(frames, PROMPTS), expected)


def test_vjepa_context_never_sees_the_targets(rewards):
    """Leak-free: the prediction (the only path with gradient) depends on context tokens alone."""
    reward = rewards["vjepa_consistency"]
    config = reward.model.config
    video = torch.randn(1, 4, 3, 32, 32, requires_grad=True)
    reward.score_video(video).sum().backward()
    context_ids, target_ids = reward.masks(4, "cpu")
    p, tub = config.patch_size, config.tubelet_size
    # gradient per token: tokens are (tubelet, patch row, patch col) in that order
    per_token = video.grad.abs().reshape(4 // tub, tub, 3, 32 // p, p, 32 // p, p).sum(dim=(1, 2, 4, 6)).flatten()
    assert (per_token[target_ids] == 0).all()
    assert (per_token[context_ids] > 0).all()
    assert 0 < len(target_ids) < per_token.numel()


def test_vjepa_needs_a_tubelet_of_frames(rewards):
    with pytest.raises(ValueError, match="at least 2 frames"):
        rewards["vjepa_consistency"](torch.rand(1, 1, 3, 32, 32), PROMPTS[:1])


def test_weighted_sum_of_real_rewards_from_a_spec(saved):
    spec = {
        "aesthetic": {
            "weight": 1.0,
            "head": saved["head"],
            "clip_model": saved["clip_model"],
            "clip_checkpoint": saved["clip"],
        },
        "hpsv2": {"weight": 2.0, "checkpoint": saved["hps"], "clip_model": saved["clip_model"]},
    }
    reward = build_reward(spec)
    assert isinstance(reward, WeightedSum)
    frames = torch.rand(2, 2, 3, 32, 32)
    with torch.no_grad():
        expected = reward.rewards["aesthetic"](frames, PROMPTS) + 2 * reward.rewards["hpsv2"](frames, PROMPTS)
        assert torch.allclose(reward(frames, PROMPTS), expected)


def test_a_standardised_ensemble_of_real_rewards_puts_them_on_one_scale(saved):
    """HPSv2, PickScore and the aesthetic score on scales of their own; standardised on the base model's videos,
    each is in units of its own spread there, so that the conservative aggregate compares like with like."""
    members = [
        {"hpsv2": {"checkpoint": saved["hps"], "clip_model": saved["clip_model"]}},
        {"pickscore": {"model": saved["pickscore"], "processor": saved["pickscore"]}},
        {"aesthetic": {"head": saved["head"], "clip_model": saved["clip_model"], "clip_checkpoint": saved["clip"]}},
    ]
    spec = {"ensemble": {"of": members, "aggregate": "mean_minus_std", "penalty": 1.0, "standardise": 4}}
    ensemble = build_reward(spec)
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(4, 2, 3, 32, 32, generator=generator)  # stand-ins for the base model's videos
    prompts = PROMPTS * 2
    with torch.no_grad():
        raw = torch.stack([reward(base, prompts) for reward in ensemble.rewards])
        fit = ensemble.fit_to_base(ensemble.base_scores(base, prompts))
        torch.testing.assert_close(torch.tensor(fit["mean"]), raw.mean(dim=1))
        standardised = ensemble.members(base, prompts)
        torch.testing.assert_close(standardised.mean(dim=1), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(standardised.std(dim=1, unbiased=False), torch.ones(3))
        other = torch.rand(2, 2, 3, 32, 32, generator=generator)
        scores = ensemble.members(other, PROMPTS)
        expected = scores.mean(dim=0) - scores.std(dim=0, unbiased=False)
        torch.testing.assert_close(ensemble(other, PROMPTS), expected)


def test_the_specs_of_a_trial_share_one_copy_of_each_reward_model(saved):
    hps = {"checkpoint": saved["hps"], "clip_model": saved["clip_model"]}
    with shared_rewards():  # as a trial builds its reward and `eval.reference_reward`
        plain = build_reward({"hpsv2": {"weight": 1.0, **hps}, "colourfulness": 0.1})
        ensemble = build_reward({"ensemble": {"of": [{"hpsv2": hps}, "colourfulness"]}})
        other = build_reward({"hpsv2": {"clip_model": saved["clip_model"], "checkpoint": saved["hps"]}})  # reordered
    assert ensemble.rewards[0] is plain.rewards["hpsv2"] is other
    assert ensemble.rewards[1] is plain.rewards["colourfulness"]
    assert build_reward({"hpsv2": hps}) is not other  # outside it, every spec builds its own
