"""Architecture diagrams, drawn by code so that they match the package's models.

Each function draws one model's structure as boxes and arrows in a new matplotlib figure: the
ViT pipeline, the pre-norm block, DeiT's two tokens and heads, GPSA's two attentions and gate,
ConViT's late class token, CaiT's two stages, MLP-Mixer's two mixings. Given a model's config
they print its sizes (depth, width, grid). Drawn in a notebook cell, a diagram is saved as a
picture in the notebook: it works offline and renders on GitHub as in JupyterLab.
"""
from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLOURS = {"data": "#e8eef7", "embed": "#fde9c9", "attn": "#f7d4d4", "mlp": "#d6ecd2", "norm": "#ece4f5",
           "token": "#fff6bf", "head": "#dfe7e4", "loss": "#f2f2f2"}


class Canvas:
    """A figure in box units: `box` places a labelled box by its centre, `arrow` joins two boxes."""

    def __init__(self, width: float, height: float, title: str, scale: float = 0.62):
        self.fig = plt.figure(figsize=(width * scale, height * scale), layout="constrained")
        self.ax = self.fig.add_subplot()
        self.ax.set_xlim(0, width), self.ax.set_ylim(0, height), self.ax.axis("off")
        self.ax.set_title(title, fontsize=10)
        self.boxes: dict[str, tuple[float, float, float, float]] = {}

    def box(self, name: str, x: float, y: float, text: str, kind: str = "data", w: float = 2.6, h: float = 0.8,
            dashed: bool = False) -> str:
        w = max(w, 0.115 * max(len(line) for line in text.split("\n")) + 0.35)  # wide enough for its text
        self.boxes[name] = (x, y, w, h)
        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                         fc=COLOURS[kind], ec="#555555", lw=1, ls="--" if dashed else "-"))
        self.ax.text(x, y, text, ha="center", va="center", fontsize=7.5)
        return name

    def _side(self, name: str, side: str, towards: float | None = None) -> tuple[float, float]:
        x, y, w, h = self.boxes[name]
        if side in ("top", "bottom") and towards is not None and abs(towards - x) < w / 2 - 0.1:
            x = towards  # a straight vertical arrow where the other box sits within this one's width
        return {"top": (x, y + h / 2), "bottom": (x, y - h / 2), "left": (x - w / 2, y), "right": (x + w / 2, y)}[side]

    def arrow(self, a: str, b: str, sides: str = "bottom-top", text: str | None = None, bend: float = 0.0) -> None:
        sa, sb = sides.split("-")
        start = self._side(a, sa, self.boxes[b][0] if sb in ("top", "bottom") else None)
        end = self._side(b, sb, start[0] if sa in ("top", "bottom") else None)
        self.ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, lw=1, color="#333333",
                                          connectionstyle=f"arc3,rad={bend}", shrinkA=1, shrinkB=1))
        if text:
            self.ax.text((start[0] + end[0]) / 2 + 0.1, (start[1] + end[1]) / 2, text, fontsize=6.5, color="#333333",
                         ha="left", va="center")

    def skip(self, a: str, b: str, x: float, text: str = "residual") -> None:
        """A residual path: out of box `a`'s right side, down a rail at `x`, into box `b`'s right side."""
        (xa, ya, wa, _), (xb, yb, wb, _) = self.boxes[a], self.boxes[b]
        self.ax.plot([xa + wa / 2, x, x], [ya, ya, yb], color="#777777", lw=1)
        self.ax.add_patch(FancyArrowPatch((x, yb), (xb + wb / 2, yb), arrowstyle="-|>", mutation_scale=9, lw=1,
                                          color="#777777", shrinkA=0, shrinkB=1))
        self.ax.text(x + 0.08, (ya + yb) / 2, text, fontsize=6.5, color="#555555", ha="left", va="center", rotation=90)

    def note(self, x: float, y: float, text: str, **kw: Any) -> None:
        self.ax.text(x, y, text, fontsize=6.8, color="#444444", **{"ha": "left", "va": "center", **kw})

    def bracket(self, top: str, bottom: str, text: str, x_offset: float = 1.6) -> None:
        """A bracket on the right of a run of boxes that repeat (e.g. "x L blocks")."""
        (x, y1, w, h1), (_, y0, _, h0) = self.boxes[top], self.boxes[bottom]
        xr = x + w / 2 + 0.25
        self.ax.plot([xr, xr + 0.15, xr + 0.15, xr], [y1 + h1 / 2, y1 + h1 / 2, y0 - h0 / 2, y0 - h0 / 2], color="#555555", lw=1)
        self.note(xr + 0.3, (y1 + y0) / 2, text)


def _get(config: Any, name: str, default: Any) -> Any:
    return getattr(config, name, default) if config is not None else default


def vit(config: Any = None, title: str = "ViT: from pixels to a class") -> Figure:
    """The ViT pipeline: patches, patch embedding, class token, positions, L pre-norm blocks, norm, head."""
    grid, depth, dim = _get(config, "grid_size", "g"), _get(config, "depth", "L"), _get(config, "dim", "D")
    n = grid * grid if isinstance(grid, int) else "N"
    c = Canvas(11, 9.4, title)
    c.box("img", 2, 8.6, f"image\n{_get(config, 'image_size', 'H')} x {_get(config, 'image_size', 'W')} pixels")
    c.box("patch", 2, 7.3, f"cut into {grid} x {grid} = {n} patches\nof P x P pixels, flattened")
    c.box("embed", 2, 6.0, f"linear embedding E (PatchEmbed)\n{n} tokens of D = {dim}", "embed")
    c.box("cls", 6.2, 6.0, "class token\n(learned, D)", "token", w=2.2)
    c.box("seq", 2, 4.7, f"[class; patches] + positions\n{n} + 1 tokens", "token")
    c.box("blocks", 2, 3.3, f"pre-norm block x {depth}\nMHSA + MLP, residuals", "attn", h=1.0)
    c.box("norm", 2, 2.0, "LayerNorm", "norm")
    c.box("head", 2, 0.8, "linear head on the class token\n-> class scores", "head")
    for a, b in (("img", "patch"), ("patch", "embed"), ("embed", "seq"), ("seq", "blocks"), ("blocks", "norm"), ("norm", "head")):
        c.arrow(a, b)
    c.arrow("cls", "seq", "bottom-right", bend=-0.2)
    c.box("pos", 6.2, 4.7, f"position embedding\n({n} + 1) x D, added", "token", w=2.6)
    c.arrow("pos", "seq", "left-right")
    c.note(3.5, 2.65, "only token 0 (the class token) is read")
    return c.fig


def block(layer_scale: bool = False, title: str | None = None, post_norm: bool = False) -> Figure:
    """A transformer block: x + Attn(LN(x)), then + MLP(LN(.)); post-norm puts LN after each addition."""
    c = Canvas(8, 9.0, title or ("post-norm block (original Transformer)" if post_norm else "pre-norm block (ViT, DeiT, CaiT)"))
    scale = "\nx LayerScale diag(gamma)" if layer_scale else ""
    c.box("x", 3, 8.4, "tokens x (N, D)")
    if post_norm:
        c.box("attn", 3, 6.9, "multi-head self-attention", "attn")
        c.box("add1", 3, 5.7, "+  then LayerNorm", "norm", w=2.2)
        c.box("mlp", 3, 4.2, "MLP: D -> rD -> D, GELU", "mlp")
        c.box("add2", 3, 3.0, "+  then LayerNorm", "norm", w=2.2)
        chain = ("x", "attn", "add1", "mlp", "add2")
    else:
        c.box("ln1", 3, 7.2, "LayerNorm", "norm")
        c.box("attn", 3, 6.1, "multi-head self-attention" + scale, "attn", h=0.9 if layer_scale else 0.8)
        c.box("add1", 3, 4.9, "+", "norm", w=0.8)
        c.box("ln2", 3, 3.8, "LayerNorm", "norm")
        c.box("mlp", 3, 2.7, "MLP: D -> rD -> D, GELU" + scale, "mlp", h=0.9 if layer_scale else 0.8)
        c.box("add2", 3, 1.5, "+", "norm", w=0.8)
        chain = ("x", "ln1", "attn", "add1", "ln2", "mlp", "add2")
    for a, b in zip(chain, chain[1:]):
        c.arrow(a, b)
    c.skip("x", "add1", 5.3)
    c.skip("add1", "add2", 5.3)
    c.note(5.2, 0.7 if not post_norm else 2.2, "the residual stream itself is never normalised" if not post_norm else
           "every output passes a LayerNorm", ha="center")
    return c.fig


def deit(config: Any = None) -> Figure:
    """DeiT's distillation: class and distillation tokens, two heads, labels and teacher as targets."""
    c = Canvas(12, 7.6, "DeiT: a distillation token beside the class token")
    c.box("cls", 1.6, 6.8, "class token", "token", w=2.0)
    c.box("dist", 4.1, 6.8, "distillation token", "token", w=2.4)
    c.box("patches", 7.4, 6.8, f"patch tokens + positions", "embed", w=3.0)
    c.box("blocks", 4.5, 5.2, f"pre-norm blocks x {_get(config, 'depth', 'L')} (all tokens attend to all)", "attn", w=7.5)
    c.box("hc", 1.6, 3.6, "class head", "head", w=2.0)
    c.box("hd", 4.1, 3.6, "distillation head", "head", w=2.4)
    c.box("y", 1.6, 2.0, "cross-entropy\nwith the label", "loss", w=2.2)
    c.box("t", 4.6, 2.0, "... with the teacher's\nanswer (hard or soft)", "loss", w=3.0)
    c.box("teacher", 9.3, 3.6, "teacher (a CNN), frozen,\nsees the same augmented image", "head", w=3.6, dashed=True)
    for a, b in (("cls", "blocks"), ("dist", "blocks"), ("patches", "blocks")):
        c.arrow(a, b, "bottom-top")
    c.arrow("blocks", "hc"), c.arrow("blocks", "hd"), c.arrow("hc", "y"), c.arrow("hd", "t")
    c.arrow("teacher", "t", "bottom-right", bend=-0.2)
    c.note(0.4, 0.7, "at test time the two heads' scores are averaged")
    return c.fig


def gpsa() -> Figure:
    """GPSA: content attention and positional attention, mixed per head by a learned gate."""
    c = Canvas(12.5, 7.2, "GPSA: gated positional self-attention (one head)")
    c.box("x", 5.9, 6.6, "patch tokens x (N, D), no class token")
    c.box("qk", 2.4, 5.2, "queries, keys\nQ = x W_q, K = x W_k", "attn")
    c.box("r", 9.4, 5.2, "relative positions r_ij =\n(dx, dy, dx^2 + dy^2)", "token")
    c.box("content", 2.4, 3.8, "content attention\nsoftmax(Q K^T / sqrt(d))", "attn")
    c.box("pos", 9.4, 3.8, "positional attention\nsoftmax(v_pos . r_ij), one for all images", "token", w=3.4)
    c.box("mix", 5.9, 2.3, "(1 - sigmoid(lambda)) content + sigmoid(lambda) positional", "norm", w=5.6)
    c.box("out", 5.9, 0.9, "weights x values  V = x W_v", "mlp", w=3.4)
    c.arrow("x", "qk"), c.arrow("x", "r", text="grid"), c.arrow("qk", "content"), c.arrow("r", "pos")
    c.arrow("content", "mix"), c.arrow("pos", "mix"), c.arrow("mix", "out")
    c.note(7.2, 1.6, "gate lambda: one per head, learned (starts at sigmoid(1) = 0.73)")
    return c.fig


def convit(config: Any = None) -> Figure:
    """ConViT: GPSA blocks on the patches, then the class token joins for the ordinary blocks."""
    local, depth = _get(config, "local_up_to_layer", "L_local"), _get(config, "depth", "L")
    later = depth - local if isinstance(depth, int) and isinstance(local, int) else "L - L_local"
    c = Canvas(10, 7.4, "ConViT: local (GPSA) blocks first, the class token joins later")
    c.box("patches", 3, 6.8, "patch tokens + positions")
    c.box("gpsa", 3, 5.3, f"pre-norm blocks with GPSA x {local}\n(patches only)", "attn", h=1.0)
    c.box("cls", 7.2, 3.9, "class token", "token", w=2.0)
    c.box("join", 3, 3.9, "[class; patches]", "token")
    c.box("sa", 3, 2.5, f"ordinary pre-norm blocks x {later}\n(self-attention)", "attn", h=1.0)
    c.box("head", 3, 1.0, "LayerNorm, head on the class token", "head", w=3.4)
    for a, b in (("patches", "gpsa"), ("gpsa", "join"), ("join", "sa"), ("sa", "head")):
        c.arrow(a, b)
    c.arrow("cls", "join", "left-right")
    return c.fig


def cait(config: Any = None) -> Figure:
    """CaiT: self-attention among patches (LayerScale, talking heads), then class attention."""
    depth, ca = _get(config, "depth", "L"), _get(config, "depth_token_only", 2)
    c = Canvas(11, 8.0, "CaiT: the patches first, then the class token reads them")
    c.box("patches", 3, 7.4, "patch tokens + positions (no class token)")
    c.box("sa", 3, 5.9, f"self-attention blocks x {depth}\ntalking heads, LayerScale", "attn", h=1.0)
    c.box("cls", 8.0, 4.4, "class token\n(enters here)", "token", w=2.2)
    c.box("ca", 3, 4.4, f"class-attention blocks x {ca}\nquery: class token only;\nkeys, values: [class; patches]",
          "attn", h=1.2, w=3.4)
    c.box("frozen", 8.0, 2.8, "patch tokens pass unchanged", "embed", w=3.0, dashed=True)
    c.box("head", 3, 1.2, "LayerNorm, head on the class token", "head", w=3.4)
    c.arrow("patches", "sa"), c.arrow("sa", "ca"), c.arrow("ca", "head"), c.arrow("cls", "ca", "left-right")
    c.arrow("sa", "frozen", "right-top", bend=-0.2)
    c.note(4.9, 0.45, "cost of a class-attention block: linear in the number of patches", ha="center")
    return c.fig


def mixer(config: Any = None) -> Figure:
    """MLP-Mixer's block: an MLP across the patches (token mixing), then one across channels."""
    c = Canvas(11.5, 8.4, "MLP-Mixer block: no attention, two MLPs")
    c.box("x", 3.5, 7.8, "tokens x (N patches, D channels)")
    c.box("ln1", 3.5, 6.6, "LayerNorm", "norm")
    c.box("tok", 3.5, 5.4, "token-mixing MLP, per channel\nacross the N patches (N -> N)", "attn", h=0.9)
    c.box("add1", 3.5, 4.2, "+", "norm", w=0.8)
    c.box("ln2", 3.5, 3.1, "LayerNorm", "norm")
    c.box("ch", 3.5, 1.9, "channel-mixing MLP, per patch\nacross the D channels (D -> D)", "mlp", h=0.9)
    c.box("add2", 3.5, 0.7, "+", "norm", w=0.8)
    for a, b in zip(("x", "ln1", "tok", "add1", "ln2", "ch"), ("ln1", "tok", "add1", "ln2", "ch", "add2")):
        c.arrow(a, b)
    c.skip("x", "add1", 5.9), c.skip("add1", "add2", 5.9)
    c.note(6.4, 5.4, "a fixed N x N map after training:\nthe same for every image\n(attention makes one per image)")
    return c.fig
