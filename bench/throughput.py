"""Throughput of our ViT, DistilledViT, ConViT and CaiT against timm's models with the same weights.

For each family and size, timm's model is built untrained (pretrained=False) and ours is
`timm_compat.from_timm` of it, so both compute the same function. Two modes: inference
(eval, no autograd) and a training step (forward, cross-entropy, backward, AdamW step).
Ours and timm take turns round by round (ours first in even rounds, timm in odd ones), so that
other load on the machine hits both alike; a round repeats the call for about 0.3 s. Images/s
is the median over rounds, the ratio ours / timm the median of the per-round ratios (with its
quartiles); a family's verdict is the median ratio of its whole-model rows. The `attn` rows time the first block's attention layer alone (a batch of
token sequences, loss = mean square), where the families differ most from plain ViT; the
whole-model rows also spend time in the patch embedding and MLPs, the same code in both.

Sizes: `canvas` = the cpu profile's model of each family (56 x 56 digit canvas, 64 patches, 1
channel), with a learned position table where it has a sin-cos one (timm has no 2D sin-cos table;
both add one tensor to the tokens), stochastic depth and dropout off; `224` = vit_tiny_patch16_224,
deit_tiny_distilled_patch16_224, convit_tiny, cait_xxs24_224. CPU in fp32 always; on a GPU
also with bf16 autocast and bigger batches. Targets: ours / timm >= 1.0 for every family,
>= 1.3 for ConViT (GPSA shares its positional attention across the batch). Writes
bench/results/throughput.json.

    python bench/throughput.py                      # everything, all cores
    python bench/throughput.py --families convit --sizes canvas
    python bench/throughput.py --profile vit        # where does the time go? (torch.profiler)
    python bench/throughput.py --quick --out /tmp   # tiny models, one round (tests)
"""
from __future__ import annotations

import statistics
from contextlib import nullcontext

import timm
import torch
import torch.nn.functional as F
from torch import nn

import common
from vit_tutorial import profiles, timm_compat
from vit_tutorial.cait import CaiT
from vit_tutorial.convit import ConViT
from vit_tutorial.deit import DistilledViT
from vit_tutorial.vit import ViT

FAMILIES = {  # name: (our class, timm model at 224, a default canvas config where the cpu profile has none)
    "vit": (ViT, "vit_tiny_patch16_224", dict(patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0)),
    "deit": (DistilledViT, "deit_tiny_distilled_patch16_224", dict(patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0)),
    "convit": (ConViT, "convit_tiny", dict(patch_size=4, dim=64, depth=6, heads=4, mlp_ratio=2.0, local_up_to_layer=4)),
    "cait": (CaiT, "cait_xxs24_224", dict(patch_size=7, dim=64, depth=6, heads=4, mlp_ratio=2.0, depth_token_only=2)),
}
TARGETS = {"vit": 1.0, "deit": 1.0, "convit": 1.3, "cait": 1.0}
CANVAS = dict(image_size=56, in_channels=1, num_classes=10)
QUICK = dict(patch_size=7, dim=16, depth=2, heads=4, mlp_ratio=2.0)  # 4 heads: a 2x2 GPSA kernel


def canvas_config(family: str, quick: bool) -> dict:
    """Our model's config at the canvas size: the cpu profile's run of that name, else the default."""
    cls, _, default = FAMILIES[family]
    runs = profiles.get("cpu").runs
    config = dict(runs[family]["model"]) if family in runs and "model" in runs[family] else CANVAS | default
    if quick:
        config = CANVAS | QUICK | ({"local_up_to_layer": 1} if family == "convit" else {})
    config.update(drop_path=0.0, drop=0.0)  # timing the architecture, not the regularisers
    if "pos_embed" in config:
        config["pos_embed"] = "learned"  # what timm has (the same cost as a fixed table)
    return config


def build(family: str, size: str, quick: bool) -> tuple[nn.Module, nn.Module]:
    """(ours, timm's) with identical weights; timm's is built first, untrained, ours converted from it."""
    cls, timm_name, _ = FAMILIES[family]
    torch.manual_seed(0)
    if size == "224":
        theirs = timm.create_model(timm_name, pretrained=False)
    else:
        theirs = timm_compat.to_timm(cls(**canvas_config(family, quick)))
    if hasattr(theirs, "set_distilled_training"):
        theirs.set_distilled_training(True)  # training returns both heads' logits, as ours does
    return timm_compat.from_timm(theirs), theirs


def first_attention_input(model: nn.Module, batch: int) -> torch.Tensor:
    """Random tokens shaped like the input of block 0's attention: patches plus prefix tokens."""
    c = model.config
    prefix = getattr(model, "num_prefix_tokens", 0) if isinstance(model, ViT) else 0  # ConViT, CaiT: patches only
    return torch.randn(batch, prefix + c.num_patches, c.dim)


def step_fns(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, dev: torch.device) -> dict:
    """The two timed calls for one model: `inference` and `train` (one AdamW step)."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else nullcontext()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def loss_of(out) -> torch.Tensor:
        if y is None:  # a lone layer: any scalar costs the same backward
            return out.float().square().mean()
        outs = out if isinstance(out, tuple) else (out,)  # distilled: both heads learn
        return sum(F.cross_entropy(o.float(), y) for o in outs) / len(outs)

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_of(model(x))
        loss.backward()
        opt.step()

    def inference() -> None:
        model.eval()
        with torch.inference_mode(), autocast:
            model(x)

    return dict(inference=inference, train=train)


def compare(family: str, size: str, part: str, batch: int, rounds: int, round_s: float, dev: torch.device,
            quick: bool) -> list[dict]:
    """Rows (one per mode) for one family, size and part ('model' or 'attn'). A round repeats the
    call enough times to last about `round_s` seconds, so that small layers are not timed by noise."""
    ours, theirs = build(family, size, quick)
    c = ours.config
    if part == "attn":
        x, y = first_attention_input(ours, batch), None
        ours, theirs = ours.blocks[0].attn, theirs.blocks[0].attn
    else:
        x = torch.randn(batch, c.in_channels, c.image_size, c.image_size)
        y = torch.randint(0, c.num_classes, (batch,))
    ours, theirs, x = ours.to(dev), theirs.to(dev), x.to(dev)
    y = y.to(dev) if y is not None else None
    fns = {"ours": step_fns(ours, x, y, dev), "timm": step_fns(theirs, x, y, dev)}
    rows = []
    for mode in ("inference", "train"):
        probe = max(min(common.seconds(f[mode], dev) for _ in range(2)) for f in fns.values())  # and warm-up
        steps = max(1, round(round_s / probe))
        loops = {who: (lambda f=f[mode]: [f() for _ in range(steps)]) for who, f in fns.items()}
        t = common.alternate(loops, rounds, warmup=0, dev=dev)
        ratios = [b / a for a, b in zip(t["ours"], t["timm"])]  # ours/timm in images/s = timm/ours in time
        q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
        ours_ips = steps * batch / statistics.median(t["ours"])
        timm_ips = steps * batch / statistics.median(t["timm"])
        rows.append(dict(family=family, size=size, part=part, mode=mode, device=dev.type, batch=batch,
                         steps=steps, tokens=x.shape[1] if part == "attn" else c.num_patches, ours_img_s=ours_ips,
                         timm_img_s=timm_ips, ratio=statistics.median(ratios), ratio_q1=q[0], ratio_q3=q[2],
                         target=TARGETS[family], meets=statistics.median(ratios) >= TARGETS[family]))
        r = rows[-1]
        print(f"{family:>6} {size:>5} {part:>5} {mode:>9}  ours {r['ours_img_s']:9.1f} img/s  timm {r['timm_img_s']:9.1f}"
              f" img/s  ours/timm {r['ratio']:.3f}", flush=True)
    return rows


COLUMNS = ["family", "size", "part", "mode", "device", "batch", "ours_img_s", "timm_img_s", "ratio", "ratio_q1",
           "ratio_q3", "target", "meets"]
FORMATS = {"ours_img_s": ".1f", "timm_img_s": ".1f", "ratio": ".3f", "ratio_q1": ".2f", "ratio_q3": ".2f", "target": ".1f"}


def plan(args, dev: torch.device) -> list[tuple[str, str, str, int, int, float]]:
    """(family, size, part, batch, rounds, seconds per round) for every comparison of this run."""
    if args.quick:
        return [(f, "canvas", p, 4, 1, 0.0) for f in args.families for p in ("model", "attn")]
    gpu = dev.type == "cuda"
    out = []
    for f in args.families:
        for size in args.sizes:
            big = size == "224"
            batch = (64 if big else 512) if gpu else (8 if big else 128)
            rounds = 10 if gpu else (3 if f == "cait" and big else 5 if big else 7)
            out += [(f, size, part, batch, rounds, 0.1 if gpu else 0.3) for part in ("model", "attn")]
    return out


def profile(family: str, batch: int = 64) -> None:
    """Top operators of 5 canvas training steps, ours then timm's, and the operators whose call
    counts differ: a real difference in the code shows there even when the machine is noisy."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    ours, theirs = build(family, "canvas", quick=False)
    c = ours.config
    x, y = torch.randn(batch, c.in_channels, c.image_size, c.image_size), torch.randint(0, c.num_classes, (batch,))
    counts = {}
    for who, model in (("ours", ours), ("timm", theirs)):
        train = step_fns(model, x, y, torch.device("cpu"))["train"]
        for _ in range(3):
            train()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                train()
        events = prof.key_averages()
        counts[who] = {e.key: e.count for e in events}
        print(f"\n--- {who} {family}: 5 training steps, batch {batch}, {sum(e.self_cpu_time_total for e in events) / 1e3:.0f} ms ---")
        print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    differ = {k: (counts["ours"].get(k, 0), counts["timm"].get(k, 0)) for k in counts["ours"].keys() | counts["timm"].keys()
              if counts["ours"].get(k, 0) != counts["timm"].get(k, 0) and not k.startswith(("Optimizer", "ProfilerStep"))}
    print("operators called a different number of times (ours, timm):", differ or "none")


def verdict(rows: list[dict]) -> list[dict]:
    """Per family and device: the median ratio of the whole-model rows (both sizes, both modes) against the target."""
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for dev in dict.fromkeys(r["device"] for r in rows):
            mine = [r for r in rows if r["family"] == family and r["device"] == dev and r["part"] == "model"]
            if mine:
                m, target = statistics.median(r["ratio"] for r in mine), TARGETS[family]
                out.append(dict(family=family, device=dev, median_model_ratio=m, target=target, meets=m >= target,
                                shortfall=max(0.0, target - m), lowest=min(r["ratio"] for r in mine),
                                highest=max(r["ratio"] for r in mine),
                                rows_meeting=f"{sum(r['ratio'] >= target for r in mine)}/{len(mine)}"))
    return out


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--sizes", nargs="+", default=["canvas", "224"], choices=["canvas", "224"])
    p.add_argument("--profile", choices=list(FAMILIES), help="profile one family's canvas training step and stop")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    if args.profile:
        return profile(args.profile)
    started = common.machine()
    print(common.header(started))
    rows = []
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() and not args.quick else [])
    for dev in devices:
        for family, size, part, batch, rounds, round_s in plan(args, dev):
            rows += compare(family, size, part, batch, rounds, round_s, dev, args.quick)
    print("\n" + common.table(rows, COLUMNS, FORMATS))
    print("\nratio = ours / timm images/s (median of per-round ratios; q1..q3 its quartiles)")
    verdicts = verdict(rows)
    print(common.table(verdicts, ["family", "device", "median_model_ratio", "lowest", "highest", "rows_meeting", "target",
                                  "meets", "shortfall"],
                       {"median_model_ratio": ".3f", "lowest": ".3f", "highest": ".3f", "target": ".1f", "shortfall": ".3f"}))
    common.write("throughput", args.out, rows, started, argv, precision={"cpu": "fp32", "cuda": "bf16 autocast"},
                 targets=TARGETS, verdicts=verdicts, configs={f: canvas_config(f, args.quick) for f in args.families})


if __name__ == "__main__":
    main()
