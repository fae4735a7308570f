"""dlfd.models: shapes, the embed/head split and the block order of both architectures."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from dlfd.models import ARCHS, build_model, count_parameters


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids oversubscribing the shared CPU cores (much faster)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def model(arch):
    torch.manual_seed(0)
    return build_model(arch, 5, dropout=0.5).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_output_and_embedding_shapes(model, x):
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        z = model.embed(x)
    assert z.shape == (2, 128)
    assert model.head.in_features == 128 and model.head.out_features == 5


def test_forward_is_head_of_embed(model, x):
    with torch.no_grad():
        assert torch.allclose(model(x), model.head(model.embed(x)), atol=1e-6)


def test_gradient_flows_to_the_input(model, x):
    xi = x.clone().requires_grad_(True)
    model(xi).sum().backward()
    assert xi.grad is not None and xi.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_blocks_partition_the_parameters_in_input_to_output_order(model, x):
    blocks = model.blocks()
    assert blocks[-1] is model.head and isinstance(blocks[-1], nn.Linear)
    ids = [{id(p) for p in b.parameters()} for b in blocks]
    assert all(ids), "every block has parameters"
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not ids[i] & ids[j], (i, j)
    assert set().union(*ids) == {id(p) for p in model.parameters()}
    # the forward pass visits the blocks in the listed order
    order, handles = [], []
    for i, b in enumerate(blocks):
        for m in b.modules():
            if any(True for _ in m.parameters(recurse=False)):
                handles.append(m.register_forward_hook(lambda *_, i=i: order.append(i)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    assert order == sorted(order) and set(order) == set(range(len(blocks)))


def test_arches_differ_in_size():
    small, big = (count_parameters(build_model(a, 3)) for a in ("small_cnn", "resnet18_mlp"))
    assert 0 < small < big
    assert big > 11_000_000  # ResNet-18 body + MLP head


def test_dropout_acts_only_in_train_mode(x):
    torch.manual_seed(0)
    m = build_model("small_cnn", 4, dropout=0.5)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(1)
    with torch.no_grad():
        z1 = m.embed(x)
    torch.manual_seed(2)
    with torch.no_grad():
        z2 = m.embed(x)
    assert not torch.equal(z1, z2)


@pytest.mark.parametrize("arch, n, named", [
    ("vgg16", 3, "vgg16"),
    ("small_cnn", 1, "num_classes=1"),
    ("small_cnn", 0, "num_classes=0"),
    ("resnet18_mlp", 2.5, "num_classes=2.5"),
    ("small_cnn", "3", "num_classes='3'"),
])
def test_bad_arguments_raise(arch, n, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        build_model(arch, n)
