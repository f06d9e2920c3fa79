"""Training of the toy reward networks on fresh procedural data (each batch is newly rendered).

Order matters: the aesthetic head and the frame predictor read the toy CLIP's image embedding, so the
CLIP is trained first and frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vaderbench.toyworld.data import video_batch
from vaderbench.toyworld.fit import fit
from vaderbench.toyworld.labels import aesthetic_score, presence
from vaderbench.toyworld.nets import (
    AestheticHead,
    ClipTokenizer,
    CriticEnsemble,
    DirectionClassifier,
    FramePredictor,
    ShapeDetector,
    build_toy_clip,
    frames_to_input,
)
from vaderbench.toyworld.preference_data import LabelledFrames
from vaderbench.toyworld.vocab import COLOURS, SHAPES


def image_embeddings(clip, frames: torch.Tensor) -> torch.Tensor:
    """Unit image embeddings [B, F, D] of videos [B, F, 3, H, W]."""
    b, f = frames.shape[:2]
    return F.normalize(clip.encode_image(frames_to_input(frames.flatten(0, 1))), dim=-1).view(b, f, -1)


def train_clip(generator: torch.Generator, steps: int, batch: int = 128):
    """Contrastive training on (frame, caption) pairs.

    A single frame cannot show motion, and two scenes may share colour, shape and background: the
    target of each frame is spread evenly over every caption in the batch that describes what it shows.
    """
    clip = build_toy_clip()
    tokenizer = ClipTokenizer()

    def loss_at(step):
        videos, scenes = video_batch(batch, generator, frames=1)
        captions = scenes.captions()
        image = F.normalize(clip.encode_image(frames_to_input(videos[:, 0])), dim=-1)
        text = F.normalize(clip.encode_text(tokenizer(captions)), dim=-1)
        logits = clip.logit_scale.exp() * image @ text.T
        visible = torch.stack([scenes.colour[:, 0], scenes.shape[:, 0], scenes.background], dim=1)
        same = (visible[:, None] == visible[None]).all(dim=-1).float()
        target = same / same.sum(dim=1, keepdim=True)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    fit(clip.parameters(), loss_at, steps, lr=2e-3, desc="toy CLIP")
    return clip.requires_grad_(False).eval()


def train_detector(generator: torch.Generator, steps: int, batch: int = 128) -> ShapeDetector:
    """Multi-label presence of shapes and object colours; shapes weigh 3x (colours are learnt far sooner)."""
    detector = ShapeDetector()
    weight = torch.tensor([3.0] * len(SHAPES) + [1.0] * len(COLOURS))

    def loss_at(step):
        videos, scenes = video_batch(batch, generator, frames=1, objects=(0, 2))
        loss = F.binary_cross_entropy_with_logits(detector(videos[:, 0]), presence(scenes), reduction="none")
        return (loss * weight).mean()

    fit(detector.parameters(), loss_at, steps, lr=2e-3, desc="shape detector")
    return detector.requires_grad_(False).eval()


def train_direction(generator: torch.Generator, steps: int, batch: int = 32) -> DirectionClassifier:
    classifier = DirectionClassifier()

    def loss_at(step):
        videos, scenes = video_batch(batch, generator, frames=(4, 6, 8, 12, 16))
        return F.cross_entropy(classifier(videos), scenes.direction[:, 0])

    fit(classifier.parameters(), loss_at, steps, lr=2e-3, desc="direction classifier")
    return classifier.requires_grad_(False).eval()


def train_aesthetic(clip, generator: torch.Generator, steps: int, batch: int = 256) -> AestheticHead:
    head = AestheticHead()

    def loss_at(step):
        videos, scenes = video_batch(batch, generator, frames=1)
        with torch.no_grad():
            embedding = image_embeddings(clip, videos)[:, 0]
        return F.mse_loss(head(embedding), aesthetic_score(scenes))

    fit(head.parameters(), loss_at, steps, lr=2e-3, desc="aesthetic head")
    return head.requires_grad_(False).eval()


def train_predictor(clip, generator: torch.Generator, steps: int, batch: int = 32) -> FramePredictor:
    predictor = FramePredictor()

    def loss_at(step):
        videos, _ = video_batch(batch, generator, frames=(4, 8, 12))
        with torch.no_grad():
            embeddings = image_embeddings(clip, videos)
        return predictor.error(embeddings).mean()

    fit(predictor.parameters(), loss_at, steps, lr=2e-3, desc="frame predictor")
    return predictor.requires_grad_(False).eval()


#: Bradley-Terry temperature in gold units: scores 0.05 apart order their pair with probability e/(1+e)
PREFERENCE_TEMPERATURE = 0.05
#: weight of the regression to the gold beside the pairwise loss: it keeps the scores on the gold's scale
REGRESSION_WEIGHT = 5.0
#: pairs closer in gold than this get no pairwise term (the regression still sees them): most same-caption pairs
#: of the base model differ by pixel noise alone, and ordering those spends the network on what it cannot see
PREFERENCE_MIN_GAP = 0.03


def preference_loss(scores: torch.Tensor, gold: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry on every same-group pair whose gold differs by at least `PREFERENCE_MIN_GAP`, with a hard
    label (the higher gold wins), plus regression to the gold (scores, gold, group: [N])."""
    wins = (gold[:, None] >= gold[None] + PREFERENCE_MIN_GAP) & (group[:, None] == group[None])
    margin = (scores[:, None] - scores[None]) / PREFERENCE_TEMPERATURE
    pairwise = F.softplus(-margin[wins]).mean() if wins.any() else scores.sum() * 0
    return pairwise + REGRESSION_WEIGHT * F.mse_loss(scores, gold)


def train_aesthetic_ensemble(
    data: dict[int, LabelledFrames],
    generator: torch.Generator,
    steps: int,
    cycle: tuple[int, ...],
    members: int = 4,
    groups_per_batch: int = 16,
    frames_per_group: int = 8,
    width: int = 16,
) -> CriticEnsemble:
    """Each member on its own bootstrap sample of the caption groups; step i trains on size cycle[i % len(cycle)]."""
    ensemble = CriticEnsemble(members, width)
    sizes = sorted(data)
    rows = {
        s: [torch.nonzero(data[s].group == g).flatten() for g in range(int(data[s].group.max()) + 1)] for s in sizes
    }
    for number, member in enumerate(ensemble.members):
        # each member draws its groups from its own bootstrap sample of them: members disagree where data is thin
        own = {s: torch.randint(0, len(rows[s]), (len(rows[s]),), generator=generator) for s in sizes}

        def loss_at(step, member=member, own=own):
            size = cycle[step % len(cycle)]
            groups = own[size][torch.randint(0, len(own[size]), (groups_per_batch,), generator=generator)].tolist()
            index = torch.cat(
                [
                    rows[size][g][torch.randint(0, len(rows[size][g]), (frames_per_group,), generator=generator)]
                    for g in groups
                ]
            )
            group = torch.arange(groups_per_batch).repeat_interleave(frames_per_group)
            return preference_loss(member(data[size].frames[index]), data[size].gold[index], group)

        fit(member.parameters(), loss_at, steps, lr=2e-3, desc=f"aesthetic reward {number + 1}/{members}")
    return ensemble.requires_grad_(False).eval()
