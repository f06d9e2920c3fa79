"""`vaderbench toyworld build|eval`: rebuild the embedded toy world's weights, or measure them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vaderbench.toyworld.stages import STAGES
from vaderbench.toyworld.weights import WEIGHTS_DIR

#: held-out captions the proxy checks sample: the same-caption pairs far apart in gold cluster in a few captions
#: (where the base model's object fades or changes colour between samples), so with 32 five of them decide the value
PROXY_CAPTIONS = 128

EVAL_LAYOUT = """The JSON object (--json) holds:
  rewards:  {reward: {metric, value}}       each toy reward model's held-out accuracy
  base:     {size: {colour, shape, direction, background}}
            the base model's caption fidelity on held-out captions (8 frames; 16, 32, 64 px)
  base_flow: the same for `toy-flow` (the base model's weights read as a rectified flow), Euler's ODE
  chance:   {colour, shape, direction, background}   the same by chance
  headroom: {reward: {size: {chance, base, oracle, base_position,
                             gold_chance, gold_base, gold_oracle, gold_base_position}}}
            each reward's mean on chance videos (shuffled captions; random frames for a prompt-free
            reward), on the base model's videos and on the best procedural videos (the caption's render;
            the best scene for a prompt-free reward; the bare background for toy_object_removal), on the
            same held-out captions at the default study's clip (4 frames at 16, 32, 64 px). gold_* is the
            reward's gold measure of the same videos; base_position is where the base model sits from
            chance (0) to the oracle (1), null when they are equal.
  proxy:    {reward: {size: {pair_accuracy, best_of_n, ladder}}}   is each learned reward a faithful proxy
            of its gold on the base model's own videos (--proxy-samples videos of each of --proxy-captions
            held-out captions, the study's clip and sampler)?
            pair_accuracy: {all, gap_0.05}: {value, low, high, pairs}: same-caption pairs ordered as the
              gold orders them (all pairs whose gold differs; those >= 0.05 apart), bootstrap 95% interval
            best_of_n: {n: {by_reward, by_gold}}: the gold of the best of n videos of a caption chosen by
              the reward, and by the gold itself (the ceiling), n = 1, 2, 4, 8, 16
            ladder: {corruption: spearman, mean}: along each caption's clean render under a corruption of
              rising strength (noise, blur, colour_shift, flicker, grid, missing_object), the Spearman
              correlation of the reward with the gold, averaged over captions"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("toyworld", help="rebuild or evaluate the embedded toy world's models")
    commands = parser.add_subparsers(dest="toyworld_command", metavar="{build,eval}", required=True)

    build = commands.add_parser(
        "build", help="train the toy models from scratch (the base model alone: about 45 minutes on 2 CPU cores)"
    )
    build.add_argument(
        "--out", type=Path, default=WEIGHTS_DIR, help="where to write the weights (default: the package's)"
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--scale", type=float, default=1.0, help="multiply every model's training steps (a quick check: 0.01)"
    )
    build.add_argument(
        "--only",
        nargs="+",
        metavar="STAGE",
        choices=STAGES,
        default=list(STAGES),
        help=f"train only these stages ({', '.join(STAGES)}; default all); a stage's weights do not depend on "
        "the others'",
    )
    build.set_defaults(func=run_build)

    evaluate = commands.add_parser(
        "eval", help="held-out accuracy of the toy reward models and of the base model's videos; rewards' headroom",
        description=EVAL_LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    evaluate.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="weights folder (default: the package's)")
    evaluate.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    evaluate.add_argument("--videos", type=int, default=384, help="fresh videos per reward measurement (default 384)")
    evaluate.add_argument(
        "--base-videos", type=int, default=60,
        help="held-out captions sampled per resolution, for base accuracy and headroom (default 60, at least 2)",
    )  # fmt: skip
    evaluate.add_argument(
        "--proxy-captions", type=int, default=PROXY_CAPTIONS,
        help=f"held-out captions for the proxy checks (default {PROXY_CAPTIONS})",
    )  # fmt: skip
    evaluate.add_argument(
        "--proxy-samples", type=int, default=16,
        help="base-model videos per caption for the proxy checks (default 16, at least 2)",
    )  # fmt: skip
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
    from vaderbench.toyworld.headroom import evaluate_headroom
    from vaderbench.toyworld.reward_checks import evaluate_proxies

    if args.videos < 1 or args.base_videos < 2:
        raise ValueError(f"--videos must be >= 1 and --base-videos >= 2, got {args.videos} and {args.base_videos}")
    if args.proxy_captions < 1 or args.proxy_samples < 2:
        raise ValueError(
            "--proxy-captions must be >= 1 and --proxy-samples >= 2, "
            f"got {args.proxy_captions} and {args.proxy_samples}"
        )
    results = {
        "rewards": evaluate_rewards(args.weights, args.videos),
        "base": evaluate_base(args.weights, args.base_videos),
        "base_flow": evaluate_base(args.weights, args.base_videos, flow=True),
        "chance": chance(),
        "headroom": evaluate_headroom(args.weights, args.base_videos),
        "proxy": evaluate_proxies(args.weights, args.proxy_captions, args.proxy_samples),
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'reward':20s} {'value':>6s}  metric")
    for name, row in results["rewards"].items():
        print(f"{name:20s} {row['value']:6.3f}  {row['metric']}")
    for name, title in (("base", "base model (DDIM)"), ("base_flow", "toy-flow (the same weights, Euler ODE)")):
        print(f"\n{title} on held-out captions ({'/'.join(results[name])} px)")
        keys = list(results["chance"])
        print(f"{'size':>6s} " + " ".join(f"{key:>10s}" for key in keys))
        for size, row in [*results[name].items(), ("chance", results["chance"])]:
            print(f"{size:>6s} " + " ".join(f"{row[key]:10.3f}" for key in keys))
    print_headroom(results["headroom"])
    print_proxy(results["proxy"])
    return 0


def print_headroom(headroom: dict) -> None:
    columns = ("chance", "base", "oracle", "base_position")
    print("\nheadroom: mean reward on chance / base model / best procedural videos (4 frames, held-out captions);")
    print("position: where the base model sits from chance (0) to the best (1); gold: the same of the reward's gold")
    header = " ".join(f"{name.replace('base_', ''):>8s}" for name in columns)
    print(f"{'':25s} {'reward':^35s} | {'gold':^35s}")
    print(f"{'reward':20s} {'size':>4s} {header} | {header}")
    for name, sizes in headroom.items():
        for size, row in sizes.items():
            proxy = " ".join(cell(row[key]) for key in columns)
            gold = " ".join(cell(row["gold_" + key]) for key in columns)
            print(f"{name:20s} {size:>4s} {proxy} | {gold}")


def cell(value: float | None) -> str:
    return f"{'-':>8s}" if value is None else f"{value:8.3f}"


def print_proxy(proxy: dict) -> None:
    print("\nproxy checks on the base model's videos of held-out captions: same-caption pairs ordered as the gold")
    print("orders them (all; gold >= 0.05 apart, 95% interval), gold of the best of 16 chosen by the reward / by")
    print("the gold (best of 1: the mean), mean Spearman with the gold along the corruption ladders")
    print(
        f"{'reward':20s} {'size':>4s} {'pairs':>6s} {'gap pairs':>21s} {'best of 1 / 16 / ceiling':>26s} {'ladder':>7s}"
    )
    for name, sizes in proxy.items():
        for size, row in sizes.items():
            gap = next(value for key, value in row["pair_accuracy"].items() if key != "all")
            best = row["best_of_n"]
            top = best[max(best, key=int)]
            interval = "-" if gap["value"] is None else f"{gap['value']:.3f} [{gap['low']:.2f}, {gap['high']:.2f}]"
            print(
                f"{name:20s} {size:>4s} {cell(row['pair_accuracy']['all']['value'])[2:]:>6s} {interval:>21s} "
                f"{best['1']['by_reward']:8.3f} {top['by_reward']:8.3f} {top['by_gold']:8.3f} "
                f"{cell(row['ladder']['mean'])[1:]:>7s}"
            )
