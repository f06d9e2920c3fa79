"""Where the toy base model loses what its captions ask for: its clean estimate at each noise level.

    python analysis/toy_denoiser_diagnostics.py                       # the shipped weights
    python analysis/toy_denoiser_diagnostics.py --weights /tmp/w      # a candidate from `toyworld build --out`

Per resolution and timestep t: the RMS error of the model's one-call clean estimate from x_t next to the
RMS of the noise it was given, and the toy judges' shape and direction accuracy on that estimate; then how
much that estimate changes when the caption's colour, shape or direction word alone changes (see
`vaderbench/toyworld/diagnose.py`). The study's 10-step sampler takes its steps at t = 999, 899, ..., 99.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vaderbench.models.toy import load_toy_model
from vaderbench.toyworld.diagnose import caption_sensitivity, diagnose
from vaderbench.toyworld.weights import WEIGHTS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights", type=Path, default=WEIGHTS_DIR, help="a toy weights folder (default: the shipped one)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--videos", type=int, default=64, help="videos per resolution")
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    model = load_toy_model(str(args.weights / "base"))
    print(f"{'size':>4} {'t':>4} {'noise rms':>9} {'estimate rms':>12} {'shape':>6} {'direction':>9}")
    for size in args.sizes:
        for row in diagnose(model, args.weights, size, args.videos, args.seed):
            print(
                f"{row['size']:>4} {row['t']:>4} {row['noise_rms']:>9.3f} {row['estimate_rms']:>12.3f} "
                f"{row['shape']:>6.2f} {row['direction']:>9.2f}"
            )
    print("\nRMS change of the clean estimate when one caption word changes (same noisy input)")
    print(f"{'size':>4} {'t':>4} {'colour':>7} {'shape':>7} {'direction':>9}")
    for size in args.sizes:
        for row in caption_sensitivity(model, size, args.videos, args.seed):
            print(f"{row['size']:>4} {row['t']:>4} {row['colour']:>7.3f} {row['shape']:>7.3f} {row['direction']:>9.3f}")


if __name__ == "__main__":
    main()
