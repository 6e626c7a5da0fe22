"""The command line: `python -m vit_tutorial train --model vit --profile cpu --out runs/vit`.

It trains exactly what the notebooks train (`experiments.fit_profile`), shows a progress bar, writes a
checkpoint into --out after every epoch and prints a one-line summary. A checkpoint already in --out
is continued only with --resume and replaced only with --overwrite. Mistakes in the options, the
folder or the data end with a one-line error, not a traceback, and before any training starts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

KINDS = ("vit", "cnn", "deit", "convit", "cait", "mixer")
PROFILES = ("smoke", "cpu", "gpu")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32 - 1], got {value}")
    return value


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name is no folder (it would mean the current one): name a folder such as runs/vit")
    return Path(text).expanduser()  # also when the shell left a quoted '~/x' alone


class _OneLineErrors(argparse.ArgumentParser):
    """An argparse parser whose mistakes end in one line (the usage is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    """The argument parser (its --help is the command's documentation)."""
    top = _OneLineErrors(prog="python -m vit_tutorial", description="Vision Transformer tutorial commands.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = commands.add_parser(
        "train", help="train a model of a profile and checkpoint it every epoch",
        description="Train one model with the settings of a profile (the same run as the notebooks), "
        "showing a progress bar; a checkpoint (safetensors + JSON) is written to --out after every epoch.",
    )
    t.add_argument("--model", required=True, choices=KINDS, help="which model to train")
    t.add_argument("--profile", choices=PROFILES, default=None,
                   help="experiment sizes: smoke (seconds, CI), cpu (minutes on a laptop, MNIST 5k), gpu (CIFAR-10); "
                   "default: $VIT_TUTORIAL_PROFILE, else gpu when CUDA is available, else cpu")
    t.add_argument("--out", required=True, type=_folder, metavar="DIR",
                   help="checkpoint folder (created if missing; it must be empty or hold a checkpoint of this package)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out if it is the same run (model, profile, data, seed, settings); "
                   "starts afresh if --out holds none")
    t.add_argument("--overwrite", action="store_true", help="start over even if --out holds a checkpoint (it is replaced "
                   "after the first epoch; without this option or --resume, an existing checkpoint is never touched)")
    t.add_argument("--epochs", type=_positive_int, metavar="N", help="number of epochs (default: the profile's)")
    t.add_argument("--seed", type=_seed, default=0, metavar="S", help="random seed, 0 .. 2**32 - 1 (default: 0)")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available, else cpu)")
    t.add_argument("--compile", action="store_true", help="wrap the model with torch.compile: a slow first epoch, faster steps after "
                   "(on a CPU it pays off only after thousands of steps; bench/fit_speed.py measures it)")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return top


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m vit_tutorial` and of the `vit-tutorial` script."""
    args = parser().parse_args(argv)
    if args.resume and args.overwrite:
        parser().error("--resume continues the run in --out and --overwrite starts it over: choose one")
    from . import checkpoint, devices, experiments  # after parsing, so that a mistake in the options is reported at once

    overrides = {"epochs": args.epochs} if args.epochs else {}
    try:
        devices.resolve(args.device)  # before loading data or a teacher
        model, history = experiments.fit_profile(
            args.model, args.profile, seed=args.seed, out=args.out, resume=args.resume, overwrite=args.overwrite,
            device=args.device, compile=args.compile, progress=args.progress, **overrides,
        )
    except (ValueError, OSError) as err:
        sys.exit(f"error: {err}".replace("\n", " "))
    except KeyboardInterrupt:
        sys.exit(_interrupted(args.out, checkpoint))
    s = history.summary()
    acc = f"test acc {s['final_test_acc']:.2%} (best {s['best_test_acc']:.2%} at epoch {s['best_epoch']})"
    epochs = f"{s['epochs']} epoch{'s' * (s['epochs'] != 1)}"
    print(f"{args.model}: {acc}, {epochs}, {s['train_seconds']:.1f} s of training, "
          f"{s['images_per_s']:.0f} images/s; checkpoint in {args.out}")


def _interrupted(out: Path, checkpoint) -> str:
    """What an interrupt leaves: the checkpoint in --out (if any) and how to continue."""
    try:
        info = checkpoint.read_info(out) if checkpoint.exists(out) else None
    except ValueError:
        info = None
    if info is None:
        return f"interrupted before the first checkpoint: nothing was saved in {out}; run the command again to start."
    return f"interrupted: the checkpoint in {out} holds epoch {info.get('epoch')}; continue with the same command plus --resume."


if __name__ == "__main__":
    main()
