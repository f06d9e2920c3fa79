"""The toy world's procedural videos, captions and prompt sets (no trained weights needed)."""

import math

import pytest
import torch
from tiny_world import TINY_BUILD

from vaderbench.prompts import load_prompts
from vaderbench.toyworld.labels import aesthetic_score, presence
from vaderbench.toyworld.render import TRAVEL, Scenes, random_scenes, render
from vaderbench.toyworld.vocab import COLOURS, DIRECTIONS, SHAPES, caption, parse_caption


def one_object(shape="circle", direction="still", size=0.2, start=(0.5, 0.5), colour="white", background="black"):
    return Scenes(
        background=torch.tensor([COLOURS.index(background)]),
        colour=torch.tensor([[COLOURS.index(colour)]]),
        shape=torch.tensor([[SHAPES.index(shape)]]),
        direction=torch.tensor([[DIRECTIONS.index(direction)]]),
        start=torch.tensor([[start]]),
        size=torch.tensor([[size]]),
        present=torch.tensor([[True]]),
    )


def coverage(video: torch.Tensor) -> torch.Tensor:
    """Fraction of white over black per pixel, [F, H, W] (white object on black background)."""
    black, white = 0.05, 0.97
    return (video[0, :, 0] - black) / (white - black)


def test_same_seed_same_videos_and_a_new_seed_new_ones():
    def videos(seed):
        return render(random_scenes(6, torch.Generator().manual_seed(seed), objects=(0, 2)), 5, 24)

    assert torch.equal(videos(3), videos(3))
    assert not torch.equal(videos(3), videos(4))


@pytest.mark.parametrize("frames,size", [(4, 16), (16, 64), (1, 20)])
def test_any_frame_count_and_resolution(frames, size):
    video = render(random_scenes(2, torch.Generator().manual_seed(0)), frames, size)
    assert video.shape == (2, frames, 3, size, size)
    assert video.min() >= 0 and video.max() <= 1


@pytest.mark.parametrize("size", [16, 64])
def test_circle_area_is_pi_r_squared_and_edges_are_antialiased(size):
    area = coverage(render(one_object(size=0.2), 1, size))[0]
    assert area.sum() / size**2 == pytest.approx(math.pi * 0.2**2, rel=0.03)
    assert ((area > 0.05) & (area < 0.95)).any()  # partial coverage at the edge


@pytest.mark.parametrize("direction,axis,sign", [("right", 0, 1), ("left", 0, -1), ("down", 1, 1), ("up", 1, -1)])
def test_objects_travel_the_set_distance_in_their_direction(direction, axis, sign):
    start = (0.5 - sign * TRAVEL / 2 if axis == 0 else 0.5, 0.5 - sign * TRAVEL / 2 if axis == 1 else 0.5)
    area = coverage(render(one_object("square", direction, size=0.15, start=start), 6, 64))
    grid = (torch.arange(64) + 0.5) / 64
    weights = area.sum(dim=1 + axis)  # marginal along the axis of motion: [F, 64]
    centre = (weights * grid).sum(dim=1) / weights.sum(dim=1)
    assert (centre[-1] - centre[0]).item() == pytest.approx(sign * TRAVEL, abs=0.01)
    assert (sign * centre.diff() > 0).all()


def test_still_objects_do_not_move_and_objects_stay_inside_the_frame():
    scenes = random_scenes(200, torch.Generator().manual_seed(1), objects=(1, 2))
    video = render(scenes, 4, 32)
    still = (scenes.direction[:, 0] == DIRECTIONS.index("still")) & ~scenes.present[:, 1]
    assert torch.equal(video[still, 0], video[still, -1])
    end = scenes.start + (torch.tensor([[-1.0, 0], [1, 0], [0, -1], [0, 1], [0, 0]])[scenes.direction] * TRAVEL)
    for point in (scenes.start, end):
        assert (point >= scenes.size[..., None] - 1e-6).all() and (point <= 1 - scenes.size[..., None] + 1e-6).all()


@pytest.mark.parametrize("spread", [0.0, 0.3])
def test_start_spread_keeps_paths_within_that_middle_fraction_of_where_they_fit(spread):
    wide, narrow = (random_scenes(300, torch.Generator().manual_seed(6), spread=s) for s in (1.0, spread))
    assert torch.equal(wide.direction, narrow.direction) and torch.equal(wide.size, narrow.size)  # same draws otherwise
    velocity = torch.tensor([[-1.0, 0], [1, 0], [0, -1], [0, 1], [0, 0]])[narrow.direction] * TRAVEL
    room = 1 - 2 * narrow.size[..., None] - velocity.abs()  # the range of starts that keep the object in frame
    path_centre = narrow.start + velocity / 2
    assert ((path_centre - 0.5).abs() <= spread * room / 2 + 1e-6).all()
    assert (wide.start + velocity / 2 - 0.5).abs().max() > 0.2  # the full range does reach far off-centre


def test_captions_name_the_objects_and_parse_back():
    scenes = random_scenes(50, torch.Generator().manual_seed(2))
    for i, text in enumerate(scenes.captions()):
        labels = parse_caption(text)
        assert labels["colour"] == COLOURS[scenes.colour[i, 0]]
        assert labels["shape"] == SHAPES[scenes.shape[i, 0]]
        assert labels["direction"] == DIRECTIONS[scenes.direction[i, 0]]
        assert labels["background"] == COLOURS[scenes.background[i]]
    assert caption("orange", "circle", "still", "red") == "an orange circle standing still on a red background"
    with pytest.raises(ValueError, match="names no shape"):
        parse_caption("a red blob moving left on a blue background")


def test_labels_mark_present_shapes_and_colours_and_the_aesthetic_rule_prefers_contrast():
    scenes = random_scenes(30, torch.Generator().manual_seed(3), objects=(0, 2))
    labels = presence(scenes)
    for i in range(30):
        expected = {SHAPES[s] for s, p in zip(scenes.shape[i].tolist(), scenes.present[i].tolist()) if p}
        assert {SHAPES[j] for j in range(3) if labels[i, j]} == expected
    high = aesthetic_score(one_object(colour="black", background="white"))
    low = aesthetic_score(one_object(colour="yellow", background="white"))
    assert high.item() == pytest.approx(0.7 * (0.92 * 3**0.5) / 3**0.5, abs=1e-4)  # white is unsaturated
    assert high > low


def test_prompt_sets_split_colour_shape_pairs_without_overlap():
    train, heldout = set(load_prompts("toy-train")), set(load_prompts("toy-heldout"))
    assert train and heldout and not train & heldout
    pairs = lambda prompts: {(parse_caption(p)["colour"], parse_caption(p)["shape"]) for p in prompts}  # noqa: E731
    assert not pairs(train) & pairs(heldout)
    assert len(pairs(train) | pairs(heldout)) == len(COLOURS) * len(SHAPES)
    action = load_prompts("toy-action")
    assert {parse_caption(p)["direction"] for p in action} == {"left", "right", "up", "down"}
    assert all(parse_caption(p)["direction"] == "still" for p in load_prompts("toy-object-removal"))


def same_tensors(first_dir, second_dir, path):
    from safetensors.torch import load_file

    first, second = load_file(str(first_dir / path)), load_file(str(second_dir / path))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow  # a (tiny) build beside the shared one, and one stage
def test_build_is_deterministic_from_its_seed_and_a_stage_alone_matches_the_whole_build(tiny_build, tmp_path, capsys):
    from vaderbench.cli import main

    # the shared build (`tiny_build`) is the first of the two; the aesthetic stage alone is compared with it in
    # test_reward_checks
    assert main(["toyworld", "build", "--out", str(tmp_path / "b"), *TINY_BUILD]) == 0
    assert "built into" in capsys.readouterr().out
    files = sorted(p.relative_to(tiny_build) for p in tiny_build.rglob("*.safetensors"))
    assert len(files) == 8  # six reward networks (the aesthetic ensemble one file), the denoiser, the text encoder
    assert all(same_tensors(tiny_build, tmp_path / "b", path) for path in files)

    # the base model's stage alone: the same weights as in the whole build, and nothing else written
    assert main(["toyworld", "build", "--out", str(tmp_path / "c"), *TINY_BUILD, "--only", "base"]) == 0
    written = sorted(p.relative_to(tmp_path / "c") for p in (tmp_path / "c").rglob("*.safetensors"))
    assert written and all(path.parts[0] == "base" for path in written)
    assert all(same_tensors(tiny_build, tmp_path / "c", path) for path in written)


def test_a_build_stage_that_needs_the_clip_or_the_base_model_says_so_when_it_is_missing(tmp_path, capsys):
    from vaderbench.cli import main

    assert main(["toyworld", "build", "--out", str(tmp_path), "--scale", "0.001", "--only", "aesthetic_clean"]) != 0
    assert "toy_clip" in capsys.readouterr().err
    # the aesthetic reward learns from the base model's videos
    assert main(["toyworld", "build", "--out", str(tmp_path), "--scale", "0.001", "--only", "aesthetic"]) != 0
    assert "toy model weights not found" in capsys.readouterr().err
