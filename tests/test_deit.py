"""DeiT: the distilled ViT, its timm twin, the distillation loss, and stochastic depth."""
import math

import pytest
import timm
import torch
from torch import nn

from vit_tutorial import ViT
from vit_tutorial.blocks import DropPath
from vit_tutorial.deit import DistillationLoss, DistilledViT, agreement, head_agreement, heads
from vit_tutorial.timm_compat import from_timm, to_timm

SMALL = dict(image_size=28, patch_size=7, in_channels=1, num_classes=10, dim=32, depth=2, heads=4)


def small(**overrides) -> DistilledViT:
    torch.manual_seed(0)
    return DistilledViT(**{**SMALL, **overrides})


# --- the model --------------------------------------------------------------------------------


def test_shapes_in_training_and_eval():
    model = small()
    x = torch.randn(3, 1, 28, 28)
    cls_logits, dist_logits = model.train()(x)
    assert cls_logits.shape == dist_logits.shape == (3, 10)
    assert model.eval()(x).shape == (3, 10)
    assert model.dist_token.shape == (1, 1, 32) and model.head_dist.out_features == 10
    assert model.pos_embed.weight.shape == (1, 2 + 16, 32) and model.num_prefix_tokens == 2
    assert isinstance(model, ViT)


def test_eval_output_is_the_mean_of_the_two_heads():
    model = small().eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        tokens = model.forward_features(x)  # (B, 2 + N, D)
        a, b = model.head(tokens[:, 0]), model.head_dist(tokens[:, 1])
        out = model(x)
    torch.testing.assert_close(out, (a + b) / 2)
    assert not torch.allclose(a, b)  # two different heads, so the mean is not trivial
    got_a, got_b = heads(model.train(), x)  # eval inside, training mode restored after
    assert model.training
    torch.testing.assert_close(got_a, a)
    torch.testing.assert_close(got_b, b)
    train_a, train_b = model(x)  # no dropout: the training pair is the same pair
    torch.testing.assert_close(train_a, a)
    torch.testing.assert_close(train_b, b)


def test_token_order_is_cls_dist_patches_with_positions():
    model = small().eval()
    x = torch.randn(2, 1, 28, 28)
    seen = {}
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model(x)
        patches = model.patch_embed(x)  # (B, N, D)
    tokens, pos = seen["x"], model.pos_embed.weight[0].detach()
    assert tokens.shape == (2, 18, 32)
    torch.testing.assert_close(tokens[:, 0], (model.cls_token[0, 0] + pos[0]).expand(2, -1))
    torch.testing.assert_close(tokens[:, 1], (model.dist_token[0, 0] + pos[1]).expand(2, -1))
    torch.testing.assert_close(tokens[:, 2:], patches + pos[2:])


def test_rebuilds_from_its_config_and_refuses_mean_pooling():
    model = small(drop_path=0.1)
    again = DistilledViT(**model.config.to_dict())
    again.load_state_dict(model.state_dict())  # same keys and shapes
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(again.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="pool"):
        DistilledViT(**{**SMALL, "pool": "mean"})
    with pytest.raises(ValueError, match="DistilledViT"):
        heads(ViT(**SMALL), x)


def test_agreement_counts_equal_argmax():
    a = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])  # classes 0 1 0 1
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 2.0]])  # classes 0 0 1 1
    assert agreement(a, b) == 0.5
    assert agreement(a, torch.tensor([0, 1, 0, 0])) == 0.75  # logits against labels: accuracy
    with pytest.raises(ValueError):
        agreement(a, b[:3])
    model, teacher = small(), nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).train()
    x = torch.randn(8, 1, 28, 28)
    result = head_agreement(model, teacher, x)
    cls_logits, dist_logits = heads(model, x)
    assert result["cls-dist"] == agreement(cls_logits, dist_logits)
    assert result["dist-teacher"] == agreement(dist_logits, teacher(x))
    assert teacher.training  # left as it was


# --- timm equivalence ------------------------------------------------------------------------


TIMM_CASES = [
    ("deit_tiny_distilled_patch16_224", {}, 224, 3),
    ("deit_tiny_distilled_patch16_224",
     dict(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=4), 28, 1),
]


@pytest.mark.parametrize("name,kwargs,size,chans", TIMM_CASES)
def test_from_timm_and_back_give_the_same_logits(name, kwargs, size, chans):
    torch.manual_seed(0)
    tm = timm.create_model(name, pretrained=False, **kwargs).eval()
    with torch.no_grad():  # move every weight away from its init so each one matters
        for p in tm.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.randn(2, chans, size, size)
    ours = from_timm(tm)
    assert type(ours) is DistilledViT
    back = to_timm(ours.eval())
    assert type(back).__name__ == "VisionTransformerDistilled"
    with torch.no_grad():
        expected, got, again = tm(x), ours(x), back(x)
    assert (got - expected).abs().max().item() < 1e-5
    assert (again - expected).abs().max().item() < 1e-5

    # training mode (no dropout, no drop path): both return the pair (cls, dist)
    tm.set_distilled_training(True)
    with torch.no_grad():
        pair_timm, pair_ours, pair_back = tm.train()(x), ours.train()(x), back.train()(x)
    for theirs, mine, round_trip in zip(pair_timm, pair_ours, pair_back):
        assert (mine - theirs).abs().max().item() < 1e-5
        assert (round_trip - theirs).abs().max().item() < 1e-5


# --- the distillation loss -------------------------------------------------------------------


class FixedTeacher(nn.Module):
    """A teacher whose logits are chosen by the test: images are the logits, times a parameter."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        return images * self.scale


A = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.2]])  # class-head logits
B = torch.tensor([[0.3, 1.5, 0.0], [1.0, -0.5, 2.0]])  # distillation-head logits
T_LOGITS = torch.tensor([[0.1, 2.0, -0.3], [0.5, 0.4, 3.0]])  # teacher; its classes are 1 and 2
Y = torch.tensor([0, 1])


def cross_entropy_by_hand(logits, classes):
    return sum(-math.log(math.exp(row[c]) / sum(math.exp(v) for v in row)) for row, c in zip(logits.tolist(), classes)) / len(classes)


def softmax_by_hand(row, tau):
    e = [math.exp(v / tau) for v in row]
    return [v / sum(e) for v in e]


def test_none_uses_the_class_head_only():
    loss = DistillationLoss(nn.CrossEntropyLoss())  # kind "none", no teacher needed
    expected = cross_entropy_by_hand(A, Y.tolist())
    assert abs(loss((A, B), Y, T_LOGITS).item() - expected) < 1e-6
    assert abs(loss(A, Y, T_LOGITS).item() - expected) < 1e-6  # a plain model's logits


@pytest.mark.parametrize("alpha,tau", [(0.5, 1.0), (0.3, 3.0)])
def test_soft_distillation_matches_the_formula(alpha, tau):
    loss = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(), "soft", alpha=alpha, tau=tau)
    kl = 0.0  # sum over samples and classes of p_t * (log p_t - log p_s), softened by tau
    for b_row, t_row in zip(B.tolist(), T_LOGITS.tolist()):
        ps, pt = softmax_by_hand(b_row, tau), softmax_by_hand(t_row, tau)
        kl += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    kd = kl * tau * tau / B.numel()  # the official code divides by batch * classes
    expected = cross_entropy_by_hand(A, Y.tolist()) * (1 - alpha) + kd * alpha
    assert abs(loss((A, B), Y, T_LOGITS).item() - expected) < 1e-6


def test_hard_distillation_matches_the_formula():
    loss = DistillationLoss(nn.CrossEntropyLoss(), FixedTeacher(), "hard", alpha=0.25)
    kd = cross_entropy_by_hand(B, [1, 2])  # the teacher's top classes
    expected = cross_entropy_by_hand(A, Y.tolist()) * 0.75 + kd * 0.25
    assert abs(loss((A, B), Y, T_LOGITS).item() - expected) < 1e-6


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_alpha_zero_is_the_base_loss_and_soft_targets_pass_through(kind):
    base = nn.CrossEntropyLoss()
    loss = DistillationLoss(base, FixedTeacher(), kind, alpha=0.0)
    mixed = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])  # mixup-style probabilities
    assert abs(loss((A, B), mixed, T_LOGITS).item() - base(A, mixed).item()) < 1e-7
    assert abs(loss((A, B), Y, T_LOGITS).item() - cross_entropy_by_hand(A, Y.tolist())) < 1e-6


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_the_teacher_gets_no_gradient_and_stays_in_eval(kind):
    teacher = FixedTeacher().train()
    loss = DistillationLoss(nn.CrossEntropyLoss(), teacher, kind)
    assert not teacher.training
    teacher.train()  # even if someone switches it back, the loss evaluates it in eval mode
    a, b = A.clone().requires_grad_(), B.clone().requires_grad_()
    loss((a, b), Y, T_LOGITS).backward()
    assert teacher.scale.grad is None and not teacher.training
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0  # both student heads learn


def test_distilled_vit_trains_one_step_with_a_teacher():
    model, teacher = small().train(), small(depth=1).train()
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    loss = DistillationLoss(nn.CrossEntropyLoss(), teacher, "soft")
    loss(model(x), y, x).backward()
    assert model.dist_token.grad is not None and model.head_dist.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_bad_settings_are_refused():
    base = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="kind"):
        DistillationLoss(base, FixedTeacher(), "medium")
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(base, FixedTeacher(), "soft", alpha=1.5)
    with pytest.raises(ValueError, match="tau"):
        DistillationLoss(base, FixedTeacher(), "soft", tau=0.0)
    with pytest.raises(ValueError, match="teacher"):
        DistillationLoss(base, None, "hard")
    with pytest.raises(ValueError, match="dist_logits"):
        DistillationLoss(base, FixedTeacher(), "hard")(A, Y, T_LOGITS)


# --- stochastic depth (DropPath), as DeiT uses it ----------------------------------------------


def test_drop_path_is_identity_in_eval_for_the_whole_model():
    model = small(drop_path=0.5).eval()
    plain = small(drop_path=0.0).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x))
        torch.testing.assert_close(model(x), model(x))


def test_drop_path_drops_whole_samples_with_the_right_expected_value():
    torch.manual_seed(0)
    p, n = 0.2, 20000
    x = torch.randn(n, 3, 4)
    y = DropPath(p).train()(x)
    dropped = (y == 0).flatten(1).all(dim=1)  # (n,)
    kept = ~dropped
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))  # kept samples: scaled by 1 / (1 - p)
    # the dropped fraction is Binomial(n, p) / n: within 5 standard deviations of p
    assert abs(dropped.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    # E[y] = x: the same v in every sample, averaged over samples, comes back as v (within 5 std)
    v = torch.randn(3, 4)
    mean = DropPath(p).train()(v.expand(n, 3, 4)).mean(dim=0)
    std = v.abs() * math.sqrt(p / (1 - p) / n)  # each sample is v / (1 - p) or 0
    assert torch.all((mean - v).abs() < 5 * std)


def test_drop_path_rates_grow_linearly_in_the_model():
    rate, depth = 0.3, 4
    model = small(drop_path=rate, depth=depth)
    rates = [block.drop_path.p for block in model.blocks]
    assert rates[0] == 0.0 and abs(rates[-1] - rate) < 1e-12
    steps = [b - a for a, b in zip(rates, rates[1:])]
    assert all(abs(s - rate / (depth - 1)) < 1e-12 for s in steps)


def test_record_attention_sees_both_prefix_tokens():
    from vit_tutorial.analysis import record_attention

    model = small().eval()
    with torch.no_grad(), record_attention(model) as maps:
        fused = model(torch.randn(2, 1, 28, 28))
    assert [m.shape for m in maps] == [(2, 4, 18, 18)] * 2  # keys and queries: cls, dist, 16 patches
    assert fused.shape == (2, 10)
