"""How fast `fit` trains a profile's models, eagerly and with `fit(..., compile=True)`: images/s and memory.

For each family the profile's run is trained by `experiments.fit_profile`, exactly as the notebooks,
the command line and `make checkpoints` train it (data loading and augmentation included), for
`--epochs` epochs; once eagerly and once with `compile=True` (torch.compile). The first epoch
carries torch.compile's compilation, so steady images/s is the median over the later epochs, and
the compile overhead is the first epoch's extra seconds; break-even is the number of steps after
which compiling has paid for itself (none where compiled steps are not faster). Compilation
starts from an empty cache in a temporary folder, as a learner's first run does (`--warm-cache`
keeps torch's own cache). On CUDA: bf16 autocast (fit's default there) and peak GPU memory of
each run. In the `gpu` profile, CIFAR-10 is replaced by synthetic CIFAR-shaped data when it is
not on disk (VIT_TUTORIAL_SYNTHETIC=1, data.py): 20 epochs of its 5000 images are 400 steps.
For the ViT it also reports the share of the core's matrix-multiply rate that training reaches:
FLOPs per image counted from the model's shapes, times images/s, against a large float32 matrix
product timed in the same run. Writes bench/results/fit_speed.json.

    python bench/fit_speed.py --threads 1            # cpu profile on the CPU (default without a GPU)
    python bench/fit_speed.py --profile gpu          # on a GPU: 20 epochs (400 steps) per run
    python bench/fit_speed.py --quick --out /tmp     # smoke profile, tiny, eager only (tests)
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import torch

import common
from vit_tutorial import data, experiments, models, profiles

FAMILIES = ["vit", "convit", "cait"]


def one_run(kind: str, profile: profiles.Profile, epochs: int, compile: bool, dev: torch.device) -> dict:
    """Train `kind` with its profile run for `epochs` epochs (`experiments.fit_profile`); per-epoch seconds,
    steady images/s and peak memory."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    _, history = experiments.fit_profile(kind, profile, epochs=epochs, compile=compile, progress=False, device=dev)
    total = time.perf_counter() - start  # evaluation of every epoch included
    images = round(history.images_per_s[0] * history.seconds[0])  # training images per epoch
    batch = profile.run(kind)["batch_size"]
    steady = statistics.median(history.seconds[1:])
    return dict(
        family=kind, compile=compile, device=dev.type, batch=batch, steps_per_epoch=-(-images // batch), epochs=epochs,
        images=images, first_epoch_s=history.seconds[0], steady_epoch_s=steady, steady_img_s=images / steady,
        total_s=total, epoch_seconds=history.seconds,
        peak_mem_mib=torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
        final_train_loss=history.train_loss[-1],
    )


def vit_train_flops(config) -> float:
    """FLOPs of one training step per image of a ViT, counted from its shapes: the forward pass (patch
    embedding, per block the qkv, proj and MLP matrices and the two attention products, the head) and
    twice that for the backward pass (gradients of the inputs and of the weights; the images have none)."""
    n, d, hidden = config.num_patches + 1, config.dim, int(config.dim * config.mlp_ratio)
    patch = 2 * config.num_patches * config.in_channels * config.patch_size**2 * d
    linear = 2 * n * (d * 3 * d + d * d + 2 * d * hidden)  # qkv, proj, fc1, fc2
    attention = 2 * 2 * n * n * d  # q k^T and the weights times v, all heads together
    rest = config.depth * (linear + attention) + 2 * d * config.num_classes
    return 3.0 * rest + 2.0 * patch  # the images need no gradient: the patch embedding's backward is its weights' alone


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix product on this process's threads: what the core can do at best."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / common.median_seconds(lambda: a @ b, repeats)


def compare(eager: dict, compiled: dict) -> dict:
    """Compiled against eager for one family: speed ratio, compile overhead and break-even steps."""
    ratio = compiled["steady_img_s"] / eager["steady_img_s"]
    overhead = compiled["first_epoch_s"] - compiled["steady_epoch_s"] - (eager["first_epoch_s"] - eager["steady_epoch_s"])
    saved_per_step = (eager["steady_epoch_s"] - compiled["steady_epoch_s"]) / eager["steps_per_epoch"]
    return dict(family=eager["family"], device=eager["device"], eager_img_s=eager["steady_img_s"],
                compiled_img_s=compiled["steady_img_s"], ratio=ratio, compile_overhead_s=overhead,
                break_even_steps=round(overhead / saved_per_step) if saved_per_step > 0 else None,
                eager_peak_mib=eager["peak_mem_mib"], compiled_peak_mib=compiled["peak_mem_mib"])


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=profiles.NAMES, help="default: gpu on CUDA, cpu otherwise (--quick: smoke)")
    p.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    p.add_argument("--epochs", type=int, help="epochs per run (default 20 on CUDA, 5 on CPU, 2 with --quick)")
    p.add_argument("--no-compile", action="store_true", help="eager runs only")
    p.add_argument("--warm-cache", action="store_true", help="reuse torch.compile's cache of earlier runs")
    args = p.parse_args(argv)
    if not args.warm_cache:  # what compiling costs the first time; read by torch when it compiles
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="fit_speed_inductor_")
    common.set_threads(args.threads)
    dev = common.device()
    gpu = dev.type == "cuda"
    name = args.profile or ("smoke" if args.quick else "gpu" if gpu else "cpu")
    if name == "gpu":
        os.environ.setdefault(data.ENV_SYNTHETIC, "0" if data.cifar10_available() else "1")
    profile = profiles.get(name)
    epochs = args.epochs or (2 if args.quick else 20 if gpu else 5)
    started = common.machine()
    print(common.header(started))
    synthetic = os.environ.get(data.ENV_SYNTHETIC, "") not in ("", "0")
    print(f"profile {name}{' (synthetic CIFAR-shaped data)' if synthetic else ''}: {epochs} epochs per run "
          f"on {dev.type}")
    rows, comparisons = [], []
    for kind in args.families:
        pair = {}
        for compiled in (False,) if args.no_compile or args.quick else (False, True):
            pair[compiled] = r = one_run(kind, profile, epochs, compiled, dev)
            rows.append(r)
            mem = f", peak {r['peak_mem_mib']:.0f} MiB" if r["peak_mem_mib"] is not None else ""
            print(f"{kind:>7} {'compiled' if compiled else 'eager':>8}: {r['steady_img_s']:8.0f} img/s steady, "
                  f"first epoch {r['first_epoch_s']:6.1f} s, steady epoch {r['steady_epoch_s']:5.2f} s{mem}", flush=True)
        if len(pair) == 2:
            comparisons.append(compare(pair[False], pair[True]))
    vit_rows = [r for r in rows if r["family"] == "vit" and not r["compile"] and r["device"] == "cpu"]
    efficiency = None
    if vit_rows:  # how much of the core's matrix-multiply rate the ViT's training reaches
        config = models.build("vit", **profile.run("vit")["model"]).config
        rate, flops = matmul_rate(512 if args.quick else 2048), vit_train_flops(config)
        achieved = flops * vit_rows[0]["steady_img_s"]
        efficiency = dict(train_flops_per_image=flops, achieved_flop_s=achieved, matmul_flop_s=rate, share=achieved / rate)
        print(f"\nViT training: {flops / 1e6:.1f} MFLOP per image (from its shapes) x {vit_rows[0]['steady_img_s']:.0f} images/s "
              f"= {achieved / 1e9:.1f} GFLOP/s; a {512 if args.quick else 2048}^2 float32 matrix product on "
              f"{torch.get_num_threads()} thread(s): {rate / 1e9:.1f} GFLOP/s; share {achieved / rate:.0%}")
    if comparisons:
        print("\n" + common.table(comparisons, ["family", "device", "eager_img_s", "compiled_img_s", "ratio",
                                                "compile_overhead_s", "break_even_steps"],
                                  {"eager_img_s": ".0f", "compiled_img_s": ".0f", "ratio": ".3f", "compile_overhead_s": ".1f"}))
        print("ratio = compiled / eager steady images/s; break-even = steps after which compiling has paid off")
    if not args.warm_cache:
        shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)
    common.write("fit_speed", args.out, rows, started, argv, profile=name, synthetic_data=synthetic,
                 epochs=epochs, cold_compile_cache=not args.warm_cache,
                 comparisons=comparisons, vit_efficiency=efficiency)


if __name__ == "__main__":
    main()
