"""`vaderbench toyworld build|eval`: rebuild the embedded toy world's weights, or measure them."""

from __future__ import annotations

import json
from pathlib import Path

from vaderbench.toyworld.stages import STAGES
from vaderbench.toyworld.weights import WEIGHTS_DIR


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("toyworld", help="rebuild or evaluate the embedded toy world's models")
    commands = parser.add_subparsers(dest="toyworld_command", metavar="{build,eval}", required=True)

    build = commands.add_parser("build", help="train the toy models from scratch (the base model alone: about 45 minutes on 2 CPU cores)")
    build.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to write the weights (default: the package's)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--scale", type=float, default=1.0, help="multiply every model's training steps (a quick check: 0.01)")
    build.add_argument(
        "--only", nargs="+", metavar="STAGE", choices=STAGES, default=list(STAGES),
        help=f"train only these stages ({', '.join(STAGES)}; default all); a stage's weights do not depend on the others'",
    )
    build.set_defaults(func=run_build)

    evaluate = commands.add_parser("eval", help="held-out accuracy of the toy reward models and of the base model's videos")
    evaluate.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="weights folder (default: the package's)")
    evaluate.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    evaluate.add_argument("--videos", type=int, default=384, help="fresh videos per reward measurement (default 384)")
    evaluate.add_argument("--base-videos", type=int, default=60, help="held-out captions sampled per resolution (default 60)")
    evaluate.set_defaults(func=run_eval)


def run_build(args) -> int:
    from vaderbench.toyworld.build import BuildSteps, build

    if args.scale <= 0:
        raise ValueError(f"--scale must be > 0, got {args.scale}")
    seconds = build(args.out, args.seed, BuildSteps().scaled(args.scale), tuple(args.only))
    print(f"toy world built into {args.out} in {seconds / 60:.1f} min ({seconds:.0f} s)")
    return 0


def run_eval(args) -> int:
    from vaderbench.toyworld.evaluate import chance, evaluate_base, evaluate_rewards

    if args.videos < 1 or args.base_videos < 1:
        raise ValueError(f"--videos and --base-videos must be >= 1, got {args.videos} and {args.base_videos}")
    results = {
        "rewards": evaluate_rewards(args.weights, args.videos),
        "base": evaluate_base(args.weights, args.base_videos),
        "chance": chance(),
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'reward':20s} {'value':>6s}  metric")
    for name, row in results["rewards"].items():
        print(f"{name:20s} {row['value']:6.3f}  {row['metric']}")
    print(f"\nbase model on held-out captions ({'/'.join(results['base'])} px)")
    print(f"{'size':>6s} {'colour':>7s} {'shape':>7s} {'direction':>9s}")
    for size, row in results["base"].items():
        print(f"{size:>6s} {row['colour']:7.3f} {row['shape']:7.3f} {row['direction']:9.3f}")
    c = results["chance"]
    print(f"{'chance':>6s} {c['colour']:7.3f} {c['shape']:7.3f} {c['direction']:9.3f}")
    return 0
