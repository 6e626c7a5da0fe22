"""The checks of every notebook's exercises, registered with `exercises.exercise` (see exercises.py).

Each check builds small inputs of its own, calls the reader's answer and compares it with the
package (or with plain arithmetic), raising AssertionError with what is wrong.
"""
from __future__ import annotations

from .exercises import answered, exercise


# --- notebook 04: the Vision Transformer ---------------------------------------------------------


@exercise("04.1", "count the parameters")
def _vit_parameters(answer) -> None:
    import torch

    from .vit import ViT, ViTConfig

    for config in (ViTConfig(), ViTConfig(image_size=56, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=4,
                                          heads=2, mlp_ratio=2.0, pos_embed="sincos"),
                   ViTConfig(image_size=32, patch_size=4, dim=48, depth=3, heads=3, qkv_bias=False, mlp_ratio=3.0)):
        with torch.device("meta"):
            real = sum(p.numel() for p in ViT(config).parameters())
        got = answered(answer(config))
        assert got == real, f"for dim={config.dim}, depth={config.depth}, patch={config.patch_size}, pos_embed=" \
            f"{config.pos_embed!r}, qkv_bias={config.qkv_bias}: you count {got:,}, the model has {real:,}."


@exercise("04.2", "the cost of smaller patches")
def _patch_cost(answer) -> None:
    for image_size, patch_size, tokens in ((56, 7, 65), (56, 4, 197), (224, 16, 197), (28, 7, 17)):
        got = answered(answer(image_size, patch_size))
        assert tuple(got) == (tokens, tokens * tokens), \
            f"{image_size} x {image_size} pixels in patches of {patch_size}: expected {(tokens, tokens * tokens)}, got {got}."


@exercise("04.3", "interpolate a position table")
def _interpolate_table(answer) -> None:
    import torch

    from .tokens import PositionEmbedding, resized

    torch.manual_seed(0)
    for old, new, dim in ((8, 12, 16), (4, 8, 8), (6, 3, 4)):
        pos = PositionEmbedding(old * old, dim, "learned", prefix=1)
        got = answered(answer(pos.weight.detach().clone(), new))
        want = resized(pos, new).weight.detach()
        assert tuple(got.shape) == tuple(want.shape), f"from {old} x {old} to {new} x {new}: shape {tuple(got.shape)}, expected {tuple(want.shape)}."
        assert torch.equal(got[0, 0], want[0, 0]), "the class token's row must stay as it is."
        assert torch.allclose(got, want, atol=1e-5), f"from {old} x {old} to {new} x {new}: the patch rows differ from a 2D bicubic resize."


# --- notebook 03: multi-head attention ------------------------------------------------------------


@exercise("03.1", "heads really are separate attentions")
def _heads_one_by_one(answer) -> None:
    import torch

    from .attention import MultiHeadSelfAttention

    torch.manual_seed(0)
    for dim, heads in ((32, 4), (24, 3), (16, 1)):
        mhsa = MultiHeadSelfAttention(dim, heads).eval()
        x = torch.randn(2, 9, dim)
        got = answered(answer(mhsa, x))
        with torch.no_grad():
            want = mhsa(x)
        assert tuple(got.shape) == tuple(want.shape), f"D={dim}, H={heads}: shape {tuple(got.shape)}, expected {tuple(want.shape)}."
        assert torch.allclose(got, want, atol=1e-5), f"D={dim}, H={heads}: your heads' output differs from mhsa(X)."


@exercise("03.2", "the entropy of attention")
def _row_entropy(answer) -> None:
    import torch

    from .analysis import entropy

    torch.manual_seed(0)
    peaked = torch.zeros(2, 3, 5, 7)
    peaked[..., 2] = 1.0  # every row on one key: entropy 0
    for attn in (torch.randn(2, 3, 5, 7).softmax(-1), torch.full((1, 2, 4, 4), 0.25), peaked):
        got = answered(answer(attn))
        want = entropy(attn)
        assert tuple(torch.as_tensor(got).shape) == tuple(want.shape), f"expected one value per head, shape {tuple(want.shape)}."
        assert torch.allclose(torch.as_tensor(got, dtype=want.dtype), want, atol=1e-5), \
            f"expected {want.tolist()}, got {torch.as_tensor(got).tolist()} (uniform rows must give 1, one-hot rows 0)."


# --- notebook 05: DeiT ------------------------------------------------------------------------------


def _distillation_cases():
    """(cls logits, dist logits, labels, a teacher, its logits, images) for random batches."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    for batch, classes in ((8, 10), (5, 3)):
        images = torch.randn(batch, 12)
        teacher = nn.Linear(12, classes)
        with torch.no_grad():
            said = teacher(images)
        yield torch.randn(batch, classes), torch.randn(batch, classes), torch.randint(0, classes, (batch,)), teacher, said, images


@exercise("05.1", "hard distillation")
def _hard_loss(answer) -> None:
    import torch
    from torch import nn

    from .deit import DistillationLoss

    for cls, dist, labels, teacher, said, images in _distillation_cases():
        for alpha in (0.5, 0.2):
            want = DistillationLoss(nn.CrossEntropyLoss(), teacher, "hard", alpha=alpha)((cls, dist), labels, images)
            got = answered(answer(cls, dist, labels, said, alpha))
            assert torch.allclose(torch.as_tensor(got), want, atol=1e-6), f"alpha={alpha}: expected {want.item():.5f}, got {float(got):.5f}."


@exercise("05.2", "soft distillation")
def _soft_loss(answer) -> None:
    import torch
    from torch import nn

    from .deit import DistillationLoss

    for cls, dist, labels, teacher, said, images in _distillation_cases():
        for alpha, tau in ((0.1, 3.0), (0.5, 1.0)):
            want = DistillationLoss(nn.CrossEntropyLoss(), teacher, "soft", alpha=alpha, tau=tau)((cls, dist), labels, images)
            got = answered(answer(cls, dist, labels, said, alpha, tau))
            assert torch.allclose(torch.as_tensor(got), want, atol=1e-6), \
                f"alpha={alpha}, tau={tau}: expected {want.item():.5f}, got {float(got):.5f} (the KL term divided by batch x classes?)."


# --- notebook 07: CaiT --------------------------------------------------------------------------------


@exercise("07.1", "CaiT's starting value")
def _cait_epsilon(answer) -> None:
    for depth, eps in ((6, 0.1), (18, 0.1), (19, 1e-5), (24, 1e-5), (25, 1e-6), (36, 1e-6), (48, 1e-6)):
        got = answered(answer(depth))
        assert abs(float(got) - eps) <= 1e-12, f"depth {depth}: CaiT starts at {eps:g}, you give {got}."


@exercise("07.2", "class attention is one row of self-attention")
def _class_row(answer) -> None:
    import torch

    from .attention import MultiHeadSelfAttention

    torch.manual_seed(0)
    for dim, heads, tokens in ((16, 4, 10), (12, 3, 5)):
        sa = MultiHeadSelfAttention(dim, heads).eval()
        z = torch.randn(2, tokens, dim)
        with torch.no_grad():
            want = sa(z)[:, :1]
            got = answered(answer(sa, z))
        assert tuple(got.shape) == tuple(want.shape), f"expected the class token's output, shape {tuple(want.shape)}; got {tuple(got.shape)}."
        assert torch.allclose(got, want, atol=1e-5), "your class-token output differs from row 0 of sa(z)."


# --- notebook 06: ConViT -------------------------------------------------------------------------------


@exercise("06.1", "a head's kernel by hand")
def _positional_kernel(answer) -> None:
    import torch

    from .convit import GPSA, kernel_offsets, relative_positions

    for grid, heads, alpha in ((5, 9, 1.0), (4, 4, 3.0), (6, 9, 0.3)):
        layer = GPSA(dim=4 * heads, heads=heads, num_patches=grid * grid, locality_strength=alpha)
        offsets = kernel_offsets(heads)
        with torch.no_grad():
            want = layer.positional_attention()
        for h in range(len(offsets)):
            got = answered(answer(relative_positions(grid), offsets[h], alpha))
            assert tuple(got.shape) == (grid * grid, grid * grid), f"expected an (N, N) matrix, got {tuple(got.shape)}."
            assert torch.allclose(got, want[h], atol=1e-5), f"grid {grid}, head {h}, alpha {alpha}: differs from GPSA's kernel."


@exercise("06.2", "no locality at all")
def _alpha_zero(answer) -> None:
    import torch

    for heads, grid in ((9, 8), (4, 5)):
        got = answered(answer(heads, grid))
        assert tuple(got.shape) == (heads, grid, grid), f"expected (heads, grid, grid) = {(heads, grid, grid)}, got {tuple(got.shape)}."
        assert torch.allclose(got, torch.full_like(got, 1 / grid**2), atol=1e-6), "with alpha = 0 every kernel is uniform: 1 / N everywhere."


# --- notebook 08: MLP-Mixer --------------------------------------------------------------------------


@exercise("08.1", "token mixing by hand")
def _token_mixing(answer) -> None:
    import torch

    from .mixer import MixerBlock

    torch.manual_seed(0)
    for n, dim in ((9, 4), (16, 6)):
        block = MixerBlock(dim, n, tokens_hidden=5, channels_hidden=8).eval()
        x = torch.randn(2, n, dim)
        with torch.no_grad():
            u = x + block.mlp_tokens(block.norm1(x).transpose(1, 2)).transpose(1, 2)  # what the block adds first
            got = answered(answer(block, x))
        assert tuple(got.shape) == (2, n, dim), f"expected (B, N, D) = {(2, n, dim)}, got {tuple(got.shape)}."
        assert torch.allclose(got, u, atol=1e-6), "that is not the block's token-mixing step (norm1, across patches, residual)."


@exercise("08.2", "how the token mixing grows")
def _token_mixing_parameters(answer) -> None:
    from .blocks import MLP

    for n, hidden in ((64, 32), (1024, 32), (16, 7)):
        want = sum(p.numel() for p in MLP(n, hidden).parameters())
        got = answered(answer(n, hidden))
        assert got == want, f"n={n}, hidden={hidden}: the MLP has {want:,} parameters, you count {got}."


# --- notebooks 01 and 02: tokens, self-attention ---------------------------------------------------


@exercise("01.1", "cut an image into patches by hand")
def _cut(answer) -> None:
    import torch

    from .tokens import patchify

    torch.manual_seed(0)
    for shape, p in (((2, 3, 16, 16), 4), ((1, 1, 28, 28), 7), ((1, 2, 12, 12), 3)):
        x = torch.randn(shape)
        got = answered(answer(x, p))
        want = patchify(x, p)
        assert tuple(got.shape) == tuple(want.shape), f"{shape} in patches of {p}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}."
        assert torch.equal(got, want), f"{shape} in patches of {p}: the right shape, but the values are in another order."


@exercise("01.2", "the sin-cos table by hand")
def _sincos(answer) -> None:
    import torch

    from .tokens import sincos_1d

    for t, d in ((10, 8), (196, 64), (5, 2)):
        got = answered(answer(t, d))
        assert tuple(got.shape) == (t, d), f"expected a ({t}, {d}) table, got {tuple(got.shape)}."
        assert torch.allclose(got.float(), sincos_1d(t, d), atol=1e-5), f"T={t}, D={d}: differs from tokens.sincos_1d."


@exercise("02.1", "test a layer for permutation equivariance")
def _equivariant(answer) -> None:
    import torch

    from .attention import SelfAttention
    from .blocks import MLP
    from .tokens import PositionEmbedding

    torch.manual_seed(0)
    x, perm = torch.randn(2, 9, 8), torch.randperm(9)
    sa, pos, mlp = SelfAttention(8), PositionEmbedding(9, 8, "sincos"), MLP(8, 16)
    for name, f, want in (("self-attention", sa, True), ("self-attention after adding positions", lambda t: sa(pos(t)), False),
                          ("an MLP on every token", mlp, True)):
        got = answered(answer(f, x, perm))
        assert bool(got) is want, f"{name} is {'' if want else 'not '}permutation equivariant; your test says {got}."


@exercise("02.2", "predict the memory of A")
def _attention_mib(answer) -> None:
    import torch

    from .attention import attend

    for b, h, t in ((1, 2, 10), (2, 3, 17), (1, 1, 64)):
        _, weights = attend(*torch.randn(3, b, h, t, 4), need_weights=True)
        want = weights.numel() * weights.element_size() / 2**20
        got = answered(answer(b, h, t))
        assert abs(float(got) - want) < 1e-9, f"B={b}, H={h}, T={t}: the weights take {want:.6f} MiB, you say {got}."
