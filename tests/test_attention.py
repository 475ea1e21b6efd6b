"""scaled_dot_product_attention and MultiheadAttention: loop-by-loop float64 references for values
and gradients, every mask kind (boolean, float, causal, key padding), fully masked rows,
dropout, errors, and PyTorch's outputs, gradients and state-dict layout where torch is
installed."""

import math

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn

RNG = np.random.default_rng(7)


def f64(shape, requires_grad=True):
    return mg.tensor(RNG.standard_normal(shape), dtype="float64", requires_grad=requires_grad)


# -- references ---------------------------------------------------------------------------------
def attention_reference(q, k, v, allowed=None, bias=None, scale=None):
    """One query row at a time: weights over the allowed keys by logaddexp, zeros if none."""
    L, S = q.shape[-2], k.shape[-2]
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                               *(m.shape[:-2] for m in (allowed, bias) if m is not None))
    q, k, v = (np.broadcast_to(t, lead + t.shape[-2:]) for t in (q, k, v))
    allowed = np.broadcast_to(np.ones((L, S), bool) if allowed is None else allowed, lead + (L, S))
    bias = np.broadcast_to(np.zeros((L, S)) if bias is None else bias, lead + (L, S))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    out = np.zeros(lead + (L, v.shape[-1]))
    weights = np.zeros(lead + (L, S))
    for idx in np.ndindex(*lead):
        for i in range(L):
            keys = [j for j in range(S) if allowed[idx][i, j] and bias[idx][i, j] != -np.inf]
            if not keys:
                continue
            scores = np.array([q[idx][i] @ k[idx][j] * scale + bias[idx][i, j] for j in keys])
            w = np.exp(scores - np.logaddexp.reduce(scores))
            weights[idx][i, keys] = w
            out[idx][i] = sum(wj * v[idx][j] for wj, j in zip(w, keys))
    return out, weights


def mha_reference(state, H, query, key, value, attn_mask=None, key_padding_mask=None,
                  add_zero_attn=False):
    """Batch-first [N, L, E] inputs, PyTorch's masks (True = masked out), head by head."""
    E = query.shape[-1]
    if "in_proj_weight" in state:
        wq, wk, wv = np.split(state["in_proj_weight"], 3)
    else:
        wq, wk, wv = state["q_proj_weight"], state["k_proj_weight"], state["v_proj_weight"]
    bq, bk, bv = np.split(state["in_proj_bias"], 3) if "in_proj_bias" in state else (0, 0, 0)
    q, k, v = query @ wq.T + bq, key @ wk.T + bk, value @ wv.T + bv
    N, L, S = q.shape[0], q.shape[1], k.shape[1]
    bias = np.zeros((N, H, L, S))
    if attn_mask is not None:
        m = attn_mask.reshape((N, H, L, S) if attn_mask.ndim == 3 else (L, S))
        bias = bias + (np.where(m, -np.inf, 0.0) if m.dtype == bool else m)
    if key_padding_mask is not None:
        m = key_padding_mask[:, None, None, :]
        bias = bias + (np.where(m, -np.inf, 0.0) if m.dtype == bool else m)
    if "bias_k" in state:
        k = np.concatenate([k, np.broadcast_to(state["bias_k"], (N, 1, E))], axis=1)
        v = np.concatenate([v, np.broadcast_to(state["bias_v"], (N, 1, E))], axis=1)
        bias = np.concatenate([bias, np.zeros((N, H, L, 1))], axis=-1)
    hd = E // H
    split = lambda t: t.reshape(N, t.shape[1], H, hd).transpose(0, 2, 1, 3)  # noqa: E731
    qh, kh, vh = split(q), split(k), split(v)
    if add_zero_attn:
        kh = np.concatenate([kh, np.zeros((N, H, 1, hd))], axis=2)
        vh = np.concatenate([vh, np.zeros((N, H, 1, hd))], axis=2)
        bias = np.concatenate([bias, np.zeros((N, H, L, 1))], axis=-1)
    out, weights = attention_reference(qh, kh, vh, bias=bias)
    out = out.transpose(0, 2, 1, 3).reshape(N, L, E) @ state["out_proj.weight"].T
    return out + state.get("out_proj.bias", 0), weights


# -- scaled_dot_product_attention -------------------------------------------------------------
MASKS = ["none", "bool", "bool_batched", "float", "float_grad", "causal"]


def make_mask(kind, lead, L, S):
    if kind == "bool":
        m = RNG.random((L, S)) < 0.7
        m[:, 0] = True
        return m, dict(allowed=m)
    if kind == "bool_batched":
        m = RNG.random(lead[:1] + (1, L, S)) < 0.6
        return m, dict(allowed=m)
    if kind in ("float", "float_grad"):
        m = RNG.standard_normal((L, S))
        # -inf masks a key out; a learned bias (float_grad) stays finite, since a gradient
        # check cannot step an infinite input
        m[RNG.random((L, S)) < 0.3] = -np.inf if kind == "float" else -30.0
        m[:, -1] = 0.5
        mask = mg.tensor(m, requires_grad=True) if kind == "float_grad" else m
        return mask, dict(bias=m)
    if kind == "causal":
        return None, dict(allowed=np.tri(L, S, dtype=bool))
    return None, {}


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("lead,L,S", [((2, 3), 4, 5), ((2,), 3, 3), ((), 5, 2), ((2, 1), 1, 4), ((1,), 2, 40)])
def test_sdpa_matches_the_reference(kind, lead, L, S):
    q, k, v = f64(lead + (L, 6)), f64(lead + (S, 6)), f64(lead + (S, 3))
    mask, ref_masks = make_mask(kind, lead, L, S)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=kind == "causal")
    expected, _ = attention_reference(q.numpy(), k.numpy(), v.numpy(), **ref_masks)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_gradcheck_and_gradgradcheck(kind):
    q, k, v = f64((2, 3, 4)), f64((2, 4, 4)), f64((2, 4, 2))
    mask, _ = make_mask(kind, (2,), 3, 4)
    inputs = [q, k, v] + ([mask] if kind == "float_grad" else [])

    def fn(q, k, v, m=mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=kind == "causal",
                                              scale=0.7)
    assert mg.gradcheck(fn, inputs)
    assert mg.gradgradcheck(fn, inputs)


def test_sdpa_scale_broadcast_and_grouped_query_heads():
    q, k, v = f64((2, 4, 3, 5)), f64((2, 2, 6, 5)), f64((2, 2, 6, 3))
    out = F.scaled_dot_product_attention(q, k, v, scale=0.3, enable_gqa=True)
    # query heads 0, 1 share key head 0; 2, 3 share key head 1
    k4, v4 = np.repeat(k.numpy(), 2, axis=1), np.repeat(v.numpy(), 2, axis=1)
    expected, _ = attention_reference(q.numpy(), k4, v4, scale=0.3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    assert mg.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                        [f64((1, 2, 2, 3)), f64((1, 1, 3, 3)), f64((1, 1, 3, 2))])
    shared = F.scaled_dot_product_attention(q, k[:1, :1], v[:1, :1])  # leading axes broadcast
    assert shared.shape == (2, 4, 3, 3)


@pytest.mark.parametrize("how", ["bool", "float"])
def test_a_fully_masked_row_gives_zeros_and_no_gradient(how):
    q, k, v = f64((2, 3, 4)), f64((2, 5, 4)), f64((2, 5, 2))
    allowed = np.ones((3, 5), bool)
    allowed[1] = False
    mask = allowed if how == "bool" else np.where(allowed, 0.0, -np.inf)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert np.isfinite(out.numpy()).all() and not out.numpy()[:, 1].any()
    out.sum().backward()
    assert not q.grad.numpy()[:, 1].any() and np.isfinite(k.grad.numpy()).all()
    assert q.grad.numpy()[:, 0].any()


def test_sdpa_float32_and_mask_dtypes():
    q, k, v = (mg.tensor(RNG.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
               for _ in range(3))
    float64_mask = RNG.standard_normal((3, 3))  # an ndarray mask takes the query's dtype
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=float64_mask, is_causal=False)
    assert out.dtype == np.float32
    expected, _ = attention_reference(*(t.numpy().astype(np.float64) for t in (q, k, v)), bias=float64_mask)
    np.testing.assert_allclose(out.numpy(), expected, rtol=2e-5, atol=1e-6)
    out.sum().backward()
    assert q.grad.dtype == np.float32


def test_sdpa_dropout_is_seeded_scaled_and_masks_the_gradient():
    q, k, v = f64((4, 6, 8)), f64((4, 6, 8)), f64((4, 6, 8))
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=3)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=3)
    c = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=4)
    assert a.numpy().tobytes() == b.numpy().tobytes() != c.numpy().tobytes()
    assert not F.scaled_dot_product_attention(q, k, v, dropout_p=1.0, rng=0).numpy().any()
    # the dropped weights are the kept ones times 1 / (1 - p): check through v = identity rows
    eye = mg.tensor(np.broadcast_to(np.eye(6), (4, 6, 6)).copy())
    dropped = F.scaled_dot_product_attention(q, k, eye, dropout_p=0.25, rng=5).numpy()
    _, weights = attention_reference(q.numpy(), k.numpy(), eye.numpy())
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], weights[kept] / 0.75, rtol=1e-12)
    assert 0.6 < kept.mean() < 0.9
    fn = lambda q: F.scaled_dot_product_attention(q, k, v, dropout_p=0.3, rng=9)  # noqa: E731
    assert mg.gradcheck(fn, [q.detach().requires_grad_()])  # same seed, same mask each call


def test_sdpa_errors():
    q, k, v = f64((2, 3, 4)), f64((2, 5, 4)), f64((2, 5, 2))
    mask = np.ones((3, 5), bool)
    with pytest.raises(ValueError, match=r"is_causal=True cannot be combined with attn_mask"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 5\) does not broadcast to the "
                                         r"attention scores' shape \(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), bool))
    with pytest.raises(TypeError, match=r"attn_mask must be a boolean or floating-point mask, got dtype int64"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"same last dimension \(features\), got shapes \(2, 3, 4\) and \(2, 5, 3\)"):
        F.scaled_dot_product_attention(q, f64((2, 5, 3)), v)
    with pytest.raises(ValueError, match=r"same sequence length \(axis -2\)"):
        F.scaled_dot_product_attention(q, k, f64((2, 4, 2)))
    with pytest.raises(TypeError, match=r"one dtype, got float64, float64 and float32"):
        F.scaled_dot_product_attention(q, k, v.numpy().astype(np.float32))
    with pytest.raises(TypeError, match=r"key must be a floating-point tensor, got dtype int64"):
        F.scaled_dot_product_attention(q, np.zeros((2, 5, 4), dtype=np.int64), v)
    with pytest.raises(ValueError, match=r"at least 2 dimensions"):
        F.scaled_dot_product_attention(f64((4,)), k, v)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\], got 1.5"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)
    with pytest.raises(ValueError, match=r"query has 3 heads, not a multiple of key's 2"):
        F.scaled_dot_product_attention(f64((1, 3, 2, 4)), f64((1, 2, 2, 4)), f64((1, 2, 2, 4)),
                                       enable_gqa=True)


# -- MultiheadAttention -------------------------------------------------------------------------
def state64(m):
    return {name: value.astype(np.float64) for name, value in m.state_dict().items()}


CONFIGS = [dict(), dict(bias=False), dict(add_bias_kv=True), dict(add_zero_attn=True),
           dict(kdim=3, vdim=5), dict(add_bias_kv=True, add_zero_attn=True)]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("masks", ["none", "attn_bool", "attn_float_3d", "kpm_bool", "kpm_float", "both"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_matches_the_reference(config, masks, batch_first):
    E, H, N, L, S = 6, 3, 2, 3, 4
    m = nn.MultiheadAttention(E, H, batch_first=batch_first, rng=1, dtype=np.float64, **config)
    q = RNG.standard_normal((N, L, E))
    k = RNG.standard_normal((N, S, config.get("kdim", E)))
    v = RNG.standard_normal((N, S, config.get("vdim", E)))
    kw = {}
    if masks in ("attn_bool", "both"):
        kw["attn_mask"] = RNG.random((L, S)) < 0.3
    if masks == "attn_float_3d":
        kw["attn_mask"] = RNG.standard_normal((N * H, L, S))
    if masks in ("kpm_bool", "both"):
        kw["key_padding_mask"] = RNG.random((N, S)) < 0.3
    if masks == "kpm_float":
        kw["key_padding_mask"] = RNG.standard_normal((N, S))
    layout = (lambda t: t) if batch_first else (lambda t: t.swapaxes(0, 1))
    out, weights = m(layout(q), layout(k), layout(v), **kw)
    ref_out, ref_weights = mha_reference(state64(m), H, q, k, v, add_zero_attn=m.add_zero_attn, **kw)
    np.testing.assert_allclose(layout(out.numpy()), ref_out, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), ref_weights.mean(axis=1), rtol=1e-11, atol=1e-13)
    out2, per_head = m(layout(q), layout(k), layout(v), average_attn_weights=False, **kw)
    np.testing.assert_allclose(per_head.numpy(), ref_weights, rtol=1e-11, atol=1e-13)
    _, none = m(layout(q), layout(k), layout(v), need_weights=False, **kw)
    assert none is None and out2.shape == out.shape


def test_mha_self_attention_unbatched_and_is_causal_hint():
    E, H, L = 4, 2, 5
    m = nn.MultiheadAttention(E, H, rng=2, dtype=np.float64)
    x = RNG.standard_normal((L, E))
    causal = np.triu(np.ones((L, L), bool), 1)  # True above the diagonal: masked out
    out, weights = m(x, x, x, attn_mask=causal)
    ref_out, ref_w = mha_reference(state64(m), H, x[None], x[None], x[None], attn_mask=causal)
    np.testing.assert_allclose(out.numpy(), ref_out[0], rtol=1e-11)
    np.testing.assert_allclose(weights.numpy(), ref_w.mean(axis=1)[0], rtol=1e-11, atol=1e-14)
    assert weights.shape == (L, L) and not np.triu(weights.numpy(), 1).any()
    hinted, _ = m(x, x, x, attn_mask=causal, is_causal=True)
    np.testing.assert_array_equal(hinted.numpy(), out.numpy())
    _, heads = m(x, x, x, key_padding_mask=np.zeros(L, bool), average_attn_weights=False)
    assert heads.shape == (H, L, L)
    with pytest.raises(ValueError, match=r"is_causal=True is a hint that attn_mask is the causal mask"):
        m(x, x, x, is_causal=True)


def test_mha_fully_masked_query_gets_the_output_bias_and_zero_weights():
    E, H = 4, 2
    m = nn.MultiheadAttention(E, H, batch_first=True, rng=3, dtype=np.float64)
    m.out_proj.bias.data[:] = [1.0, 2.0, 3.0, 4.0]
    x = mg.tensor(RNG.standard_normal((2, 3, E)), requires_grad=True)
    mask = np.zeros((3, 3), bool)
    mask[1] = True
    out, weights = m(x, x, x, attn_mask=mask)
    np.testing.assert_allclose(out.numpy()[:, 1], np.broadcast_to([1.0, 2.0, 3.0, 4.0], (2, 4)))
    assert not weights.numpy()[:, 1].any()
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_mha_gradients_first_and_second_order():
    E, H = 4, 2
    m = nn.MultiheadAttention(E, H, batch_first=True, add_bias_kv=True, rng=4, dtype=np.float64)
    mask = np.array([[False, True, False], [False, False, False]])
    params = [m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.bias_k]

    def fn(x, w_in, b_in, w_out, bias_k):
        saved = m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.bias_k
        m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.bias_k = w_in, b_in, w_out, bias_k
        try:
            out, weights = m(x, x, x, key_padding_mask=mask)
            return out, weights
        finally:
            m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.bias_k = saved

    x = f64((2, 3, E))
    assert mg.gradcheck(fn, [x] + params)
    assert mg.gradgradcheck(lambda x, w: fn(x, w, *params[1:])[0], [x, params[0]])


def test_mha_dropout_in_training_only():
    E, H = 4, 2
    m = nn.MultiheadAttention(E, H, dropout=0.5, batch_first=True, rng=5, dtype=np.float64)
    x = RNG.standard_normal((2, 6, E))
    _, w_train = m(x, x, x, average_attn_weights=False)
    assert (w_train.numpy() == 0).mean() > 0.3  # returned after dropout, as PyTorch
    kept = w_train.numpy() != 0
    m.eval()
    out_eval, w_eval = m(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w_train.numpy()[kept], 2 * w_eval.numpy()[kept], rtol=1e-12)
    ref, _ = mha_reference(state64(m), H, x, x, x)
    np.testing.assert_allclose(out_eval.numpy(), ref, rtol=1e-11)


def test_mha_parameters_init_and_errors():
    m = nn.MultiheadAttention(8, 2, add_bias_kv=True, rng=0)
    assert [n for n, _ in m.named_parameters()] == [
        "in_proj_weight", "in_proj_bias", "bias_k", "bias_v", "out_proj.weight", "out_proj.bias"]
    assert m.in_proj_weight.shape == (24, 8) and m.in_proj_weight.dtype == np.float32
    assert np.abs(m.in_proj_weight.numpy()).max() <= math.sqrt(6 / 32)  # Xavier over [3E, E]
    assert np.abs(m.out_proj.weight.numpy()).max() <= 1 / math.sqrt(8)  # PyTorch's Linear default
    assert not m.in_proj_bias.numpy().any() and not m.out_proj.bias.numpy().any()
    separate = nn.MultiheadAttention(8, 4, kdim=3, vdim=5, bias=False, rng=0)
    assert [n for n, _ in separate.named_parameters()] == [
        "q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"]
    assert separate.k_proj_weight.shape == (8, 3) and separate.v_proj_weight.shape == (8, 5)
    same = nn.MultiheadAttention(8, 2, rng=7).state_dict()
    assert all(np.array_equal(a, b) for a, b in zip(same.values(), nn.MultiheadAttention(8, 2, rng=7).state_dict().values()))
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads, got embed_dim=10 and num_heads=4"):
        nn.MultiheadAttention(10, 4)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\], got -0.1"):
        nn.MultiheadAttention(8, 2, dropout=-0.1)
    x = np.zeros((3, 2, 8), np.float32)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(3, 3\) or "
                                         r"\(N \* num_heads, L, S\) = \(4, 3, 3\), got \(2, 3\)"):
        m(x, x, x, attn_mask=np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(2, 3\)"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match=r"query must have 8 features \(last axis\), got shape \(3, 2, 4\)"):
        m(np.zeros((3, 2, 4), np.float32), x, x)
    with pytest.raises(ValueError, match=r"same batch size \(axis 1\)"):
        m(x, np.zeros((3, 5, 8), np.float32), np.zeros((3, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"3-D \(batched\) or 2-D \(unbatched\)"):
        m(x[None], x[None], x[None])
    with pytest.raises(TypeError, match=r"attn_mask must be a boolean or floating-point mask"):
        m(x, x, x, attn_mask=np.zeros((3, 3), np.int8))


# -- PyTorch ------------------------------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "causal_rect", "masked_row"])
def test_sdpa_matches_pytorch(kind):
    torch = _torch()
    L, S = (3, 5) if kind in ("causal_rect", "bool", "float", "masked_row") else (4, 4)
    q, k, v = RNG.standard_normal((2, 2, L, 4)), RNG.standard_normal((2, 2, S, 4)), RNG.standard_normal((2, 2, S, 3))
    mask = None
    if kind == "bool":
        mask = RNG.random((L, S)) < 0.7
        mask[:, 0] = True
    elif kind == "float":
        mask = RNG.standard_normal((2, 1, L, S))
    elif kind == "masked_row":
        mask = np.ones((L, S), bool)
        mask[1] = False
    causal = kind.startswith("causal")
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    t_out = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=None if mask is None else torch.tensor(mask), is_causal=causal)
    upstream = RNG.standard_normal(t_out.shape)
    t_out.backward(torch.tensor(upstream))
    mq, mk, mv = (mg.tensor(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(mq, mk, mv, attn_mask=mask, is_causal=causal)
    out.backward(upstream)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-14)
    for ours, theirs in ((mq, tq), (mk, tk), (mv, tv)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("config", CONFIGS + [dict(batch_first=True)])
def test_mha_state_dict_matches_pytorch_and_loads_its_weights(config):
    torch = _torch()
    E, H, N, L, S = 8, 2, 3, 4, 5
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, **config).double()
    ours = nn.MultiheadAttention(E, H, rng=0, dtype=np.float64, **config)
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    bf = config.get("batch_first", False)
    shape = lambda n, e: (N, n, e) if bf else (n, N, e)  # noqa: E731
    q = RNG.standard_normal(shape(L, E))
    k = RNG.standard_normal(shape(S, config.get("kdim", E)))
    v = RNG.standard_normal(shape(S, config.get("vdim", E)))
    masks = dict(attn_mask=RNG.random((L, S)) < 0.25, key_padding_mask=RNG.random((N, S)) < 0.25)
    masks["attn_mask"][:, 0] = masks["key_padding_mask"][:, 0] = False  # no fully masked rows
    for need_weights in (True, False):
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        t_out, t_w = theirs(tq, tk, tv, need_weights=need_weights,
                            **{name: torch.tensor(m) for name, m in masks.items()})
        upstream = RNG.standard_normal(t_out.shape)
        t_out.backward(torch.tensor(upstream))
        mq, mk, mv = (mg.tensor(a, requires_grad=True) for a in (q, k, v))
        ours.zero_grad()
        out, w = ours(mq, mk, mv, need_weights=need_weights, **masks)
        out.backward(upstream)
        np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-11, atol=1e-13)
        if need_weights:
            np.testing.assert_allclose(w.numpy(), t_w.detach().numpy(), rtol=1e-11, atol=1e-13)
        for a, b in ((mq, tq), (mk, tk), (mv, tv)):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)
        theirs_grads = {n: p.grad.numpy() for n, p in theirs.named_parameters()}
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), theirs_grads[name], rtol=1e-10, atol=1e-12)
        theirs.zero_grad()
