"""The command line: `python -m vit_tutorial train --model vit --profile cpu --out runs/vit`.

It trains exactly what the notebooks train (`experiments.fit_profile`), shows a progress bar, writes a
checkpoint into --out after every epoch and prints a one-line summary. Mistakes in the options
end with a one-line error, not a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

KINDS = ("vit", "cnn", "deit", "convit", "cait")
PROFILES = ("smoke", "cpu", "gpu")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="checkpoint directory (created if missing)")
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out (starts afresh if there is none)")
    t.add_argument("--epochs", type=_positive_int, metavar="N", help="number of epochs (default: the profile's)")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available, else cpu)")
    t.add_argument("--compile", action="store_true", help="wrap the model with torch.compile: a slow first epoch, faster steps after "
                   "(on a CPU it pays off only after thousands of steps; bench/fit_speed.py measures it)")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return top


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m vit_tutorial` and of the `vit-tutorial` script."""
    args = parser().parse_args(argv)
    from . import experiments  # after parsing, so that a mistake in the options is reported at once

    overrides = {"epochs": args.epochs} if args.epochs else {}
    try:
        model, history = experiments.fit_profile(
            args.model, args.profile, seed=args.seed, out=args.out, resume=args.resume, device=args.device,
            compile=args.compile, progress=args.progress, **overrides,
        )
    except ValueError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: continue with the same command plus --resume (checkpoint in {args.out})")
    s = history.summary()
    acc = f"test acc {s['final_test_acc']:.2%} (best {s['best_test_acc']:.2%} at epoch {s['best_epoch']})"
    epochs = f"{s['epochs']} epoch{'s' * (s['epochs'] != 1)}"
    print(f"{args.model}: {acc}, {epochs}, {s['train_seconds']:.1f} s of training, "
          f"{s['images_per_s']:.0f} images/s; checkpoint in {args.out}")


if __name__ == "__main__":
    main()
